#include "ops/op_common.h"

#include "kernels/bit_convention.h"

#include <atomic>
#include <cstring>
#include <limits>
#include <memory>

namespace bnn2onnx {
namespace {

// Releases a status and tells whether it said the attribute is absent (as opposed to present with another type).
bool ReleaseAndCheckMissing(OrtStatus* status, const char* name) {
  const OrtApi& api = Ort::GetApi();
  const std::string message = api.GetErrorMessage(status);
  api.ReleaseStatus(status);
  if (message.find("No attribute") != std::string::npos) return true;
  Fail("attribute '", name, "' has the wrong type: ", message);
}

}  // namespace

std::ostream& operator<<(std::ostream& out, ShapeStr s) {
  out << "[";
  for (size_t i = 0; i < s.shape.size(); ++i) out << (i ? "," : "") << s.shape[i];
  return out << "]";
}

std::optional<int64_t> Attributes::OptionalInt(const char* name) const {
  int64_t value = 0;
  if (OrtStatus* status = Ort::GetApi().KernelInfoGetAttribute_int64(info_, name, &value)) {
    ReleaseAndCheckMissing(status, name);
    return std::nullopt;
  }
  return value;
}

int64_t Attributes::RequiredInt(const char* name) const {
  const std::optional<int64_t> value = OptionalInt(name);
  Check(value.has_value(), "required attribute '", name, "' is missing");
  return *value;
}

std::optional<std::vector<int64_t>> Attributes::OptionalInts(const char* name) const {
  const OrtApi& api = Ort::GetApi();
  size_t count = 0;
  if (OrtStatus* status = api.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &count)) {
    ReleaseAndCheckMissing(status, name);
    return std::nullopt;
  }
  std::vector<int64_t> values(count);
  if (count > 0) Ort::ThrowOnError(api.KernelInfoGetAttributeArray_int64(info_, name, values.data(), &count));
  return values;
}

std::optional<std::string> Attributes::OptionalString(const char* name) const {
  const OrtApi& api = Ort::GetApi();
  size_t size = 0;
  if (OrtStatus* status = api.KernelInfoGetAttribute_string(info_, name, nullptr, &size)) {
    ReleaseAndCheckMissing(status, name);
    return std::nullopt;
  }
  std::string value(size, '\0');
  Ort::ThrowOnError(api.KernelInfoGetAttribute_string(info_, name, value.data(), &size));
  value.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
  return value;
}

namespace {

// Every input passes here, so no op sees a dimension above kMaxDim: an empty tensor may claim any shape, and
// loops over its batch or derived sizes must not run for 2^40 iterations of nothing.
TensorIn Describe(const Ort::ConstValue& value, size_t index) {
  Check(value.IsTensor(), "input ", index, " must be a tensor");
  const Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
  TensorIn t;
  t.type = info.GetElementType();
  t.shape = info.GetShape();
  for (const int64_t d : t.shape) {
    Check(d >= 0 && d <= kMaxDim, "input ", index, " shape ", ShapeStr(t.shape), " has a dimension outside [0, ",
          kMaxDim, "]");
  }
  t.size = static_cast<int64_t>(info.GetElementCount());
  t.data = value.GetTensorRawData();
  return t;
}

}  // namespace

TensorIn ReadInput(Ort::KernelContext& ctx, size_t index) {
  Ort::ConstValue value = ctx.GetInput(index);
  Check(static_cast<const OrtValue*>(value) != nullptr, "input ", index, " is missing");
  return Describe(value, index);
}

std::optional<TensorIn> OptionalInput(Ort::KernelContext& ctx, size_t index) {
  if (index >= ctx.GetInputCount()) return std::nullopt;
  Ort::ConstValue value = ctx.GetInput(index);
  if (static_cast<const OrtValue*>(value) == nullptr) return std::nullopt;
  return Describe(value, index);
}

bool HasInput(const OrtKernelInfo* info, size_t index) {
  const Ort::ConstKernelInfo kernel_info(info);
  return index < kernel_info.GetInputCount() && !kernel_info.GetInputName(index).empty();
}

bool HasOutput(const OrtKernelInfo* info, size_t index) {
  const Ort::ConstKernelInfo kernel_info(info);
  return index < kernel_info.GetOutputCount() && !kernel_info.GetOutputName(index).empty();
}

std::optional<TensorIn> ConstantInput(const OrtKernelInfo* info, size_t index) {
  int is_constant = 0;
  const Ort::ConstValue value = Ort::ConstKernelInfo(info).GetTensorConstantInput(index, &is_constant);
  if (!is_constant || static_cast<const OrtValue*>(value) == nullptr) return std::nullopt;
  return Describe(value, index);
}

std::optional<ONNXTensorElementDataType> DeclaredInputType(const OrtKernelInfo* info, size_t index) {
  const Ort::TypeInfo type_info = Ort::ConstKernelInfo(info).GetInputTypeInfo(index);
  if (type_info.GetONNXType() != ONNX_TYPE_TENSOR) return std::nullopt;
  const ONNXTensorElementDataType type = type_info.GetTensorTypeAndShapeInfo().GetElementType();
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED) return std::nullopt;
  return type;
}

const char* TypeName(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    default: return "another type";
  }
}

void CheckRank(const TensorIn& t, const char* what, size_t rank) {
  Check(t.shape.size() == rank, what, " must have rank ", rank, ", got shape ", ShapeStr(t.shape));
}

void CheckType(const TensorIn& t, const char* what, ONNXTensorElementDataType type) {
  Check(t.type == type, what, " must be ", TypeName(type), ", got ", TypeName(t.type));
}

void CheckVector(const TensorIn& t, const char* what, ONNXTensorElementDataType type, int64_t length) {
  CheckType(t, what, type);
  Check(t.shape.size() == 1 && t.shape[0] == length, what, " must have shape [", length, "], got ",
        ShapeStr(t.shape));
}

std::vector<int64_t> PairAttribute(const Attributes& attributes, const char* name, std::vector<int64_t> fallback,
                                   int64_t min) {
  const std::vector<int64_t> values = attributes.Ints(name, std::move(fallback));
  Check(values.size() == 2, "attribute '", name, "' must have 2 values, got ", ShapeStr(values));
  for (int64_t v : values) {
    Check(v >= min && v <= kMaxDim, "attribute '", name, "' values must be in [", min, ", ", kMaxDim, "], got ",
          ShapeStr(values));
  }
  return values;
}

int64_t SlidingWindowSize(int64_t in, int64_t pad_begin, int64_t pad_end, int64_t kernel, int64_t dilation,
                          int64_t stride, const char* axis) {
  const int64_t span = (kernel - 1) * dilation + 1;
  Check(in + pad_begin + pad_end >= span, "the dilated kernel (", span, ") is larger than the padded input ",
        axis, " (", in, " + pads ", pad_begin, "+", pad_end, ")");
  return (in + pad_begin + pad_end - span) / stride + 1;
}

int64_t CheckedProduct(const std::vector<int64_t>& factors, const char* what) {
  for (int64_t f : factors) Check(f >= 0, what, " has a negative size: ", ShapeStr(factors));
  // An empty tensor's other dimensions may multiply past int64: its size is still 0.
  if (std::find(factors.begin(), factors.end(), 0) != factors.end()) return 0;
  int64_t product = 1;
  for (int64_t f : factors) {
    Check(!__builtin_mul_overflow(product, f, &product), what, " is too large: ", ShapeStr(factors));
  }
  return product;
}

ONNXTensorElementDataType ShapeInference::InputType(size_t index) const {
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* info = nullptr;  // owned by the context
  Ort::ThrowOnError(api.ShapeInferContext_GetInputTypeShape(ctx_, index, &info));
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  Ort::ThrowOnError(api.GetTensorElementType(info, &type));
  return type;
}

std::optional<Dims> ShapeInference::InputDims(size_t index) const {
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* info = nullptr;  // owned by the context
  Ort::ThrowOnError(api.ShapeInferContext_GetInputTypeShape(ctx_, index, &info));
  size_t rank = 0;
  Ort::ThrowOnError(api.GetDimensionsCount(info, &rank));
  if (rank == 0) return std::nullopt;  // no op here takes scalars, so rank 0 means "shape not known"
  std::vector<int64_t> values(rank);
  std::vector<const char*> symbols(rank);
  Ort::ThrowOnError(api.GetDimensions(info, values.data(), rank));
  Ort::ThrowOnError(api.GetSymbolicDimensions(info, symbols.data(), rank));
  Dims dims(rank);
  for (size_t i = 0; i < rank; ++i) {
    dims[i].value = values[i];
    if (values[i] < 0 && symbols[i] != nullptr) dims[i].symbol = symbols[i];
  }
  return dims;
}

namespace {

const OrtOpAttr* FindAttribute(OrtShapeInferContext* ctx, const char* name) {
  const OrtOpAttr* attr = nullptr;
  if (OrtStatus* status = Ort::GetApi().ShapeInferContext_GetAttribute(ctx, name, &attr)) {
    Ort::GetApi().ReleaseStatus(status);
    return nullptr;
  }
  return attr;
}

}  // namespace

std::optional<int64_t> ShapeInference::Int(const char* name) const {
  const OrtOpAttr* attr = FindAttribute(ctx_, name);
  if (attr == nullptr) return std::nullopt;
  int64_t value = 0;
  size_t size = 0;
  if (OrtStatus* status = Ort::GetApi().ReadOpAttr(attr, ORT_OP_ATTR_INT, &value, sizeof value, &size)) {
    Ort::GetApi().ReleaseStatus(status);
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<int64_t>> ShapeInference::Ints(const char* name) const {
  const OrtOpAttr* attr = FindAttribute(ctx_, name);
  if (attr == nullptr) return std::nullopt;
  const OrtApi& api = Ort::GetApi();
  size_t size = 0;
  if (OrtStatus* status = api.ReadOpAttr(attr, ORT_OP_ATTR_INTS, nullptr, 0, &size)) api.ReleaseStatus(status);
  std::vector<int64_t> values(size / sizeof(int64_t));
  if (OrtStatus* status = api.ReadOpAttr(attr, ORT_OP_ATTR_INTS, values.data(), size, &size)) {
    api.ReleaseStatus(status);
    return std::nullopt;
  }
  return values;
}

void ShapeInference::SetOutput(ONNXTensorElementDataType type, const Dims& dims) const {
  static std::atomic<uint64_t> next_symbol{0};
  const OrtApi& api = Ort::GetApi();
  std::vector<int64_t> values;
  std::vector<std::string> names;
  for (const Dim& d : dims) {
    values.push_back(d.Known() ? d.value : -1);
    names.push_back(d.Known() ? std::string() : !d.symbol.empty() ? d.symbol : Str("bnn2onnx_unk_", next_symbol++));
  }
  std::vector<const char*> symbols;
  for (const std::string& name : names) symbols.push_back(name.c_str());
  OrtTensorTypeAndShapeInfo* info = nullptr;
  Ort::ThrowOnError(api.CreateTensorTypeAndShapeInfo(&info));
  std::unique_ptr<OrtTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*)> owned(
      info, [](OrtTensorTypeAndShapeInfo* p) { Ort::GetApi().ReleaseTensorTypeAndShapeInfo(p); });
  Ort::ThrowOnError(api.SetTensorElementType(info, type));
  Ort::ThrowOnError(api.SetDimensions(info, values.data(), values.size()));
  Ort::ThrowOnError(api.SetSymbolicDimensions(info, symbols.data(), symbols.size()));
  Ort::ThrowOnError(api.ShapeInferContext_SetOutputTypeShape(ctx_, 0, info));
}

namespace {

// attribute[i] of a list attribute of `size` values (`fallback` when absent); nullopt when malformed.
std::optional<int64_t> ListAttribute(const ShapeInference& s, const char* name, size_t size, size_t i,
                                     int64_t fallback) {
  const std::optional<std::vector<int64_t>> values = s.Ints(name);
  if (!values) return fallback;
  if (values->size() != size) return std::nullopt;
  return (*values)[i];
}

}  // namespace

Dim WindowOutputDim(const ShapeInference& s, const Dim& in, size_t axis, const Dim& kernel) {
  const std::optional<int64_t> stride = ListAttribute(s, "strides", 2, axis, 1);
  const std::optional<int64_t> dilation = ListAttribute(s, "dilations", 2, axis, 1);
  const std::optional<int64_t> pad_begin = ListAttribute(s, "pads", 4, axis, 0);
  const std::optional<int64_t> pad_end = ListAttribute(s, "pads", 4, axis + 2, 0);
  if (!stride || !dilation || !pad_begin || !pad_end || !in.Known() || !kernel.Known()) return Dim{};
  const bool sane = kernel.value >= 1 && kernel.value <= kMaxDim && *dilation >= 1 && *dilation <= kMaxDim &&
                    *stride >= 1 && *pad_begin >= 0 && *pad_end >= 0 && *pad_begin <= kMaxDim &&
                    *pad_end <= kMaxDim && in.value <= kMaxDim * kMaxDim;
  if (!sane) return Dim{};
  const int64_t span = (kernel.value - 1) * *dilation + 1;
  const int64_t padded = in.value + *pad_begin + *pad_end;
  if (padded < span) return Dim{};
  return Dim{(padded - span) / *stride + 1, {}};
}

Dim WordsDim(const Dim& channels) { return channels.Known() ? Dim{WordsFor(channels.value), {}} : Dim{}; }

}  // namespace bnn2onnx
