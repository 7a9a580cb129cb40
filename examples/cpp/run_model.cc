// Runs a converted model with onnxruntime's C++ API, without Python: the bnn2onnx ops registered from their
// library, one input read from a .npy file (float32, or int32 for a packed input; C order), every float output
// printed (shape, argmax of each row, the first values) and, when asked, the first output written to a .npy file.
//
//   run_model ONNXRUNTIME_LIBRARY BNN2ONNX_LIBRARY MODEL.onnx INPUT.npy [OUTPUT.npy [THREADS]]
//
// onnxruntime is opened at run time (dlopen) rather than linked, so one binary runs with whichever onnxruntime
// the device has (1.17 or newer: the API version the ops need).
#include <dlfcn.h>

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kApiVersion = 17;

struct Array {
  std::vector<int64_t> shape;
  bool int32 = false;  // else float32
  std::vector<char> bytes;
};

// A .npy file holding a little-endian float32 or int32 array in C order (numpy.save's format, versions 1 to 3).
Array ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(path + ": cannot open");
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(path + ": not a .npy file");
  const bool long_header = static_cast<unsigned char>(bytes[6]) >= 2;
  size_t header_length = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
  size_t start = 10;
  if (long_header) {
    header_length |= static_cast<size_t>(static_cast<unsigned char>(bytes[10])) << 16 |
                     static_cast<size_t>(static_cast<unsigned char>(bytes[11])) << 24;
    start = 12;
  }
  const std::string header = bytes.substr(start, header_length);
  Array array;
  array.int32 = header.find("'descr': '<i4'") != std::string::npos;
  if ((!array.int32 && header.find("'descr': '<f4'") == std::string::npos) ||
      header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error(path + ": needs a float32 or int32 array in C order, header " + header);
  }
  const size_t open = header.find('(', header.find("'shape'")), close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  for (std::string dim; std::getline(dims, dim, ',');) {
    if (dim.find_first_not_of(' ') != std::string::npos) array.shape.push_back(std::stoll(dim));
  }
  int64_t count = 1;
  for (const int64_t dim : array.shape) count *= dim;
  const size_t data = start + header_length;
  if (bytes.size() - data != static_cast<size_t>(count) * 4) throw std::runtime_error(path + ": truncated");
  array.bytes.assign(bytes.data() + data, bytes.data() + bytes.size());
  return array;
}

void WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const float* values, size_t count) {
  std::string dims;
  for (const int64_t dim : shape) dims += std::to_string(dim) + ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');  // the data starts on a multiple of 64 bytes
  header += '\n';
  std::ofstream file(path, std::ios::binary);
  file.write("\x93NUMPY\x01\x00", 8);
  const char length[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
  file.write(length, 2);
  file << header;
  file.write(reinterpret_cast<const char*>(values), static_cast<std::streamsize>(count * sizeof(float)));
  if (!file) throw std::runtime_error(path + ": cannot write");
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

int Run(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s ONNXRUNTIME_LIBRARY BNN2ONNX_LIBRARY MODEL.onnx INPUT.npy [OUTPUT.npy [THREADS]]\n",
                 argv[0]);
    return 2;
  }
  void* runtime = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (runtime == nullptr) throw std::runtime_error(std::string("cannot load onnxruntime: ") + dlerror());
  using GetApiBase = const OrtApiBase* (*)();
  const auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(runtime, "OrtGetApiBase"));
  if (get_api_base == nullptr) throw std::runtime_error(std::string(argv[1]) + " has no OrtGetApiBase");
  const OrtApiBase* base = get_api_base();
  const OrtApi* api = base->GetApi(kApiVersion);
  if (api == nullptr) throw std::runtime_error(std::string("onnxruntime ") + base->GetVersionString() + " is too old");
  Ort::InitApi(api);

  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "run_model");
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(argc > 6 ? std::atoi(argv[6]) : 1);
  options.RegisterCustomOpsLibrary(argv[2]);
  Ort::Session session(env, argv[3], options);

  Array input = ReadNpy(argv[4]);
  Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  Ort::Value tensor = Ort::Value::CreateTensor(
      memory, input.bytes.data(), input.bytes.size(), input.shape.data(), input.shape.size(),
      input.int32 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  Ort::AllocatorWithDefaultOptions allocator;
  const Ort::AllocatedStringPtr input_name = session.GetInputNameAllocated(0, allocator);
  std::vector<Ort::AllocatedStringPtr> output_names;
  std::vector<const char*> names;
  for (size_t i = 0; i < session.GetOutputCount(); ++i) {
    output_names.push_back(session.GetOutputNameAllocated(i, allocator));
    names.push_back(output_names.back().get());
  }
  const char* input_names[] = {input_name.get()};
  std::vector<Ort::Value> outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &tensor, 1, names.data(),
                                                names.size());
  std::printf("onnxruntime %s, model %s, input %s %s\n", base->GetVersionString(), argv[3], input_name.get(),
              ShapeText(input.shape).c_str());
  for (size_t o = 0; o < outputs.size(); ++o) {
    const auto info = outputs[o].GetTensorTypeAndShapeInfo();
    const std::vector<int64_t> shape = info.GetShape();
    if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      std::printf("output %s %s (not float)\n", names[o], ShapeText(shape).c_str());
      continue;
    }
    const float* values = outputs[o].GetTensorData<float>();
    const size_t count = info.GetElementCount();
    const size_t row = shape.empty() ? 1 : count / static_cast<size_t>(std::max<int64_t>(shape[0], 1));
    std::printf("output %s %s, argmax per row:", names[o], ShapeText(shape).c_str());
    for (size_t r = 0; row > 0 && r < count / row; ++r) {
      std::printf(" %zu", static_cast<size_t>(std::max_element(values + r * row, values + (r + 1) * row) -
                                              (values + r * row)));
    }
    std::printf("\nfirst values:");
    for (size_t i = 0; i < std::min<size_t>(count, 8); ++i) std::printf(" %.9g", values[i]);
    std::printf("\n");
    if (o == 0 && argc > 5) WriteNpy(argv[5], shape, values, count);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "run_model: %s\n", error.what());
    return 1;
  }
}
