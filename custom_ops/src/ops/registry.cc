// The library's only exported symbol: adds every op to the "bnn2onnx" domain of a session.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "ops/op_common.h"
#include "ops/ops.h"

namespace {

// onnxruntime 1.N offers ORT API versions 1 to N (asking GetApi for a newer one prints a complaint).
std::pair<int, int> RuntimeVersion(const OrtApiBase* api_base) {
  int major = 0, minor = 0;
  if (std::sscanf(api_base->GetVersionString(), "%d.%d", &major, &minor) != 2) return {0, 0};
  return {major, minor};
}

// onnxruntime before 1.22 refuses an op with several inputs of any type (op_common.h, Typing);
// BNN2ONNX_OP_TYPING=concrete chooses the concrete form on any runtime (to test it).
bnn2onnx::Typing TypingFor(std::pair<int, int> runtime) {
  const char* forced = std::getenv("BNN2ONNX_OP_TYPING");
  if (forced != nullptr && std::strcmp(forced, "concrete") == 0) return bnn2onnx::Typing::kConcrete;
  return runtime >= std::pair{1, 22} ? bnn2onnx::Typing::kDynamic : bnn2onnx::Typing::kConcrete;
}

// The newest ORT API version the runtime offers, at most the one these headers describe.
uint32_t RuntimeApiVersion(std::pair<int, int> runtime) {
  if (runtime.first != 1) return ORT_API_VERSION;
  return static_cast<uint32_t>(std::clamp<int>(runtime.second, bnn2onnx::kMinOrtApiVersion, ORT_API_VERSION));
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(bnn2onnx::kMinOrtApiVersion);
  if (api == nullptr) {
    // This runtime predates the API we were built for. We cannot create an OrtStatus without an OrtApi, so ask
    // the oldest API (version 1, present in every release) for one.
    const OrtApi* oldest = api_base->GetApi(1);
    const std::string message = std::string("bnn2onnx custom ops need onnxruntime >= 1.") +
                                std::to_string(bnn2onnx::kMinOrtApiVersion) + " (ORT API " +
                                std::to_string(bnn2onnx::kMinOrtApiVersion) + "); this runtime is " +
                                api_base->GetVersionString();
    return oldest != nullptr ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
  }
  // Every call the kernels make goes through this table, so they use nothing newer than kMinOrtApiVersion.
  Ort::InitApi(api);
  return bnn2onnx::Guard("RegisterCustomOps", [&] {
    OrtCustomOpDomain* domain = nullptr;
    Ort::ThrowOnError(api->CreateCustomOpDomain(bnn2onnx::kDomain, &domain));
    // onnxruntime does not take ownership, and the domain must outlive every session made from these options,
    // which this library cannot observe: it is deliberately never released (a few bytes per registration).
    Ort::ThrowOnError(api->AddCustomOpDomain(options, domain));
    const std::pair<int, int> runtime = RuntimeVersion(api_base);
    const bnn2onnx::Typing typing = TypingFor(runtime);
    bnn2onnx::OpList ops = {bnn2onnx::BitPackOp(), bnn2onnx::BitUnpackOp(), bnn2onnx::BinaryMaxPool2DOp()};
    for (const bnn2onnx::OpList& layer : {bnn2onnx::BinaryConv2DOps(typing), bnn2onnx::BinaryDenseOps(typing)}) {
      ops.insert(ops.end(), layer.begin(), layer.end());
    }
    // An op declares the OrtCustomOp version it fills in; a runtime refuses a newer one than its own, and reads
    // only the members its version has (all of which these ops fill in from version 17 on). One process loads one
    // onnxruntime, so the ops are shared and their version set once.
    const uint32_t version = RuntimeApiVersion(runtime);
    for (OrtCustomOp* op : ops) {
      op->version = std::min<uint32_t>(op->version, version);
      Ort::ThrowOnError(api->CustomOpDomain_Add(domain, op));
    }
  });
}
