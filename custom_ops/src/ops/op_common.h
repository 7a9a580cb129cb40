// What every op kernel shares: error reporting, attribute reading, tensor access, ORT's thread pool, and the
// adaptor that turns a kernel class into an OrtCustomOp. Errors are exceptions inside a kernel and become an
// onnxruntime status at the C boundary (Guard), so no exception ever crosses into onnxruntime.
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <algorithm>
#include <array>
#include <exception>
#include <mutex>
#include <type_traits>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bnn2onnx {

// The ops' domain and the oldest OrtApi version they need (onnxruntime 1.21).
inline constexpr const char* kDomain = "bnn2onnx";
inline constexpr uint32_t kMinOrtApiVersion = 17;

// Bounds that keep every size computation far from overflow (docs/ops.md, "Size limits"): no input dimension,
// channel count, kernel size, stride, dilation or pad exceeds kMaxDim, so a sum of a few of them or a product of
// two stays far inside int64 and every other derived size goes through CheckedProduct; and a +-1 dot product
// never exceeds kMaxAccumulatorBits terms.
inline constexpr int64_t kMaxDim = int64_t{1} << 24;
inline constexpr int64_t kMaxAccumulatorBits = int64_t{1} << 30;

// A model or input that breaks an op's contract. The message names the problem and quotes the values;
// Guard prefixes the op name.
class OpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
std::string Str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// A shape in an error message, "[1,64,56,56]". Formatted only when a message is built: Check's arguments are
// evaluated on every call, and a string per shape check cost 1% of a network's run.
struct ShapeStr {
  explicit ShapeStr(const std::vector<int64_t>& s) : shape(s) {}
  const std::vector<int64_t>& shape;
};
std::ostream& operator<<(std::ostream& out, ShapeStr s);

template <class... Args>
[[noreturn]] void Fail(const Args&... args) {
  throw OpError(Str(args...));
}

template <class... Args>
void Check(bool condition, const Args&... args) {
  if (!condition) Fail(args...);
}

// Runs f and converts any exception into an onnxruntime status "[op] message".
template <class F>
OrtStatus* Guard(const char* op, F&& f) noexcept {
  const OrtApi& api = Ort::GetApi();
  try {
    f();
    return nullptr;
  } catch (const OpError& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, Str("[", op, "] ", e.what()).c_str());
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), Str("[", op, "] ", e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return api.CreateStatus(ORT_FAIL, Str("[", op, "] out of memory").c_str());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, Str("[", op, "] ", e.what()).c_str());
  }
}

// Attribute access with defaults. A present attribute of the wrong type is an error, never a silent default.
class Attributes {
 public:
  explicit Attributes(const OrtKernelInfo* info) : info_(info) {}

  std::optional<int64_t> OptionalInt(const char* name) const;
  std::optional<std::vector<int64_t>> OptionalInts(const char* name) const;
  std::optional<std::string> OptionalString(const char* name) const;

  int64_t Int(const char* name, int64_t fallback) const { return OptionalInt(name).value_or(fallback); }
  int64_t RequiredInt(const char* name) const;
  std::vector<int64_t> Ints(const char* name, std::vector<int64_t> fallback) const {
    return OptionalInts(name).value_or(std::move(fallback));
  }
  std::string String(const char* name, std::string fallback) const {
    return OptionalString(name).value_or(std::move(fallback));
  }

 private:
  const OrtKernelInfo* info_;
};

// A read-only view of one input tensor.
struct TensorIn {
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  int64_t size = 0;
  const void* data = nullptr;

  template <class T>
  const T* As() const { return static_cast<const T*>(data); }
};

TensorIn ReadInput(Ort::KernelContext& ctx, size_t index);
// An optional input: std::nullopt when the node omits it (fewer inputs, or an empty name).
std::optional<TensorIn> OptionalInput(Ort::KernelContext& ctx, size_t index);
// Whether the node gives input `index` (known at session creation).
bool HasInput(const OrtKernelInfo* info, size_t index);
// Whether the node names an output `index` (an optional output may be left out or given an empty name).
bool HasOutput(const OrtKernelInfo* info, size_t index);
// The input if the model stores it as a constant initializer (known at session creation).
std::optional<TensorIn> ConstantInput(const OrtKernelInfo* info, size_t index);
// The element type the graph declares for an input, if it is known at session creation.
std::optional<ONNXTensorElementDataType> DeclaredInputType(const OrtKernelInfo* info, size_t index);

const char* TypeName(ONNXTensorElementDataType type);

// Shape checks that quote what they saw.
void CheckRank(const TensorIn& t, const char* what, size_t rank);
void CheckType(const TensorIn& t, const char* what, ONNXTensorElementDataType type);
void CheckVector(const TensorIn& t, const char* what, ONNXTensorElementDataType type, int64_t length);

// A 2-value list attribute (`fallback` when absent), each value in [min, kMaxDim].
std::vector<int64_t> PairAttribute(const Attributes& attributes, const char* name, std::vector<int64_t> fallback,
                                   int64_t min);

// Output length of a sliding window (conv, pool) along one axis; the padded input must hold one dilated kernel.
int64_t SlidingWindowSize(int64_t in, int64_t pad_begin, int64_t pad_end, int64_t kernel, int64_t dilation,
                          int64_t stride, const char* axis);

// The one way the ops multiply sizes (elements, words, scratch, grid planes): the product of non-negative
// factors, or an error naming `what` instead of a wrapped value.
int64_t CheckedProduct(const std::vector<int64_t>& factors, const char* what);

// Memory owned by the calling thread and kept across runs, so that a kernel does not allocate (and fault in
// fresh pages) on every run. The contents are stale; each Tag names a separate buffer.
template <class Tag, class T>
T* ThreadScratch(size_t size) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

// Work split for ParallelFor: at most this many batches of consecutive indices. Enough to balance a few threads
// (uneven layers, a busy core), few enough that scheduling does not cost more than small tasks (one output
// row of a late layer is a few microseconds).
inline constexpr size_t kMaxParallelBatches = 16;

// Runs body(i) for i in [0, total) on the session's intra-op thread pool. An exception in any task (e.g. a
// failed allocation) is caught on its thread and rethrown here once all tasks are done, so it never unwinds
// through onnxruntime's thread pool.
template <class F>
void ParallelFor(Ort::KernelContext& ctx, size_t total, F&& body) {
  if (total == 0) return;
  if (total == 1) {
    body(size_t{0});
    return;
  }
  struct Shared {
    std::remove_reference_t<F>* body;
    std::mutex mutex;
    std::exception_ptr error;
  } shared{&body, {}, nullptr};
  ctx.ParallelFor(
      [](void* data, size_t i) {
        auto* s = static_cast<Shared*>(data);
        try {
          (*s->body)(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(s->mutex);
          if (!s->error) s->error = std::current_exception();
        }
      },
      total, std::min<size_t>(total, kMaxParallelBatches), &shared);
  if (shared.error) std::rethrow_exception(shared.error);
}

// One dimension seen by shape inference: a value (>= 0), a symbol, or unknown (value < 0, empty symbol).
struct Dim {
  int64_t value = -1;
  std::string symbol;

  bool Known() const { return value >= 0; }
};
using Dims = std::vector<Dim>;
class ShapeInference;

// Output length of a sliding window (conv, pool) along spatial axis 0 (height) or 1 (width), from the node's
// strides/dilations/pads attributes; unknown when anything it needs is unknown or invalid.
Dim WindowOutputDim(const ShapeInference& s, const Dim& in, size_t axis, const Dim& kernel);
// The words needed for a known channel count.
Dim WordsDim(const Dim& channels);

// Graph-time type and shape inference for one node (the C API directly: the C++ wrapper drops element types).
// Lenient by design: whatever it cannot work out becomes an unknown dimension, and the kernel's constructor,
// which runs next, reports the actual problem.
class ShapeInference {
 public:
  explicit ShapeInference(OrtShapeInferContext* ctx) : ctx_(ctx) {}

  ONNXTensorElementDataType InputType(size_t index) const;
  // The input's dimensions; std::nullopt when its rank is unknown.
  std::optional<Dims> InputDims(size_t index) const;
  std::optional<int64_t> Int(const char* name) const;
  std::optional<std::vector<int64_t>> Ints(const char* name) const;
  // Unknown dimensions get fresh symbols, so no two of them claim to be equal.
  void SetOutput(ONNXTensorElementDataType type, const Dims& dims) const;

 private:
  OrtShapeInferContext* ctx_;
};

// Turns a kernel class into an OrtCustomOp. A kernel class provides:
//   static constexpr const char* kName;
//   static constexpr std::array<ONNXTensorElementDataType, N> kInputTypes;  (UNDEFINED = checked by the kernel)
//   static constexpr std::array<ONNXTensorElementDataType, M> kOutputTypes; (UNDEFINED = set by InferShape)
//   static void InferShape(const ShapeInference&);   output type and shape at graph resolution
//   explicit Kernel(const OrtKernelInfo*);            validates attributes and constant inputs
//   void Compute(Ort::KernelContext&);
template <class Kernel>
struct KernelAdaptor {
  explicit KernelAdaptor(const OrtKernelInfo* info) : kernel(info) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    return Guard(Kernel::kName, [&] {
      Ort::KernelContext ctx(context);
      kernel.Compute(ctx);
    });
  }
  Kernel kernel;
};

// Kernel::kRequiredInputs if the kernel names it (its later inputs are optional), else every input is required.
template <class Kernel, class = void>
struct RequiredInputs : std::integral_constant<size_t, Kernel::kInputTypes.size()> {};
template <class Kernel>
struct RequiredInputs<Kernel, std::void_t<decltype(Kernel::kRequiredInputs)>>
    : std::integral_constant<size_t, Kernel::kRequiredInputs> {};

// Kernel::kRequiredOutputs likewise (its later outputs are optional; InferShape sets only output 0's shape).
template <class Kernel, class = void>
struct RequiredOutputs : std::integral_constant<size_t, Kernel::kOutputTypes.size()> {};
template <class Kernel>
struct RequiredOutputs<Kernel, std::void_t<decltype(Kernel::kRequiredOutputs)>>
    : std::integral_constant<size_t, Kernel::kRequiredOutputs> {};

template <class Kernel>
struct CustomOp : Ort::CustomOpBase<CustomOp<Kernel>, KernelAdaptor<Kernel>, /*WithStatus=*/true> {
  using InputTypes = std::remove_const_t<decltype(Kernel::kInputTypes)>;
  using OutputTypes = std::remove_const_t<decltype(Kernel::kOutputTypes)>;

  // The kernel's own declared types, or (TypedVariants) one concrete combination of them.
  explicit CustomOp(const InputTypes& inputs = Kernel::kInputTypes, const OutputTypes& outputs = Kernel::kOutputTypes)
      : input_types_(inputs), output_types_(outputs) {
    // CustomOpBase only wires InferOutputShapeFn for the C++ wrapper's context type; ours needs element types.
    this->InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* ctx) -> OrtStatusPtr {
      return Guard(Kernel::kName, [&] { Kernel::InferShape(ShapeInference(ctx)); });
    };
  }
  const char* GetName() const { return Kernel::kName; }
  size_t GetInputTypeCount() const { return input_types_.size(); }
  ONNXTensorElementDataType GetInputType(size_t index) const { return input_types_[index]; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index < RequiredInputs<Kernel>::value ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }
  size_t GetOutputTypeCount() const { return output_types_.size(); }
  ONNXTensorElementDataType GetOutputType(size_t index) const { return output_types_[index]; }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t index) const {
    return index < RequiredOutputs<Kernel>::value ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }

  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
    *kernel = nullptr;
    return Guard(Kernel::kName, [&] { *kernel = new KernelAdaptor<Kernel>(info); });
  }

 private:
  InputTypes input_types_;
  OutputTypes output_types_;
};

// How an op is offered to onnxruntime. Dynamic: one OrtCustomOp whose inputs may be UNDEFINED (any type), checked
// by the kernel with its own messages. Concrete: onnxruntime 1.21 and older accept at most one UNDEFINED input
// when an output is UNDEFINED, so an op with several is offered as one OrtCustomOp per concrete type combination
// (same name), and onnxruntime picks the one matching a node's types.
enum class Typing { kDynamic, kConcrete };
using OpList = std::vector<OrtCustomOp*>;

}  // namespace bnn2onnx
