// The library's only exported symbol: adds every op to the "bnn2onnx" domain of a session.
#include "op_common.h"
#include "ops.h"

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(bnn2onnx::kMinOrtApiVersion);
  if (api == nullptr) {
    // This runtime predates the API we were built for. We cannot create an OrtStatus without an OrtApi, so ask
    // the oldest API (version 1, present in every release) for one.
    const OrtApi* oldest = api_base->GetApi(1);
    const std::string message = std::string("bnn2onnx custom ops need onnxruntime >= 1.21 (ORT API ") +
                                std::to_string(bnn2onnx::kMinOrtApiVersion) + "); this runtime is " +
                                api_base->GetVersionString();
    return oldest != nullptr ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
  }
  Ort::InitApi(api);
  return bnn2onnx::Guard("RegisterCustomOps", [&] {
    OrtCustomOpDomain* domain = nullptr;
    Ort::ThrowOnError(api->CreateCustomOpDomain(bnn2onnx::kDomain, &domain));
    // onnxruntime does not take ownership, and the domain must outlive every session made from these options,
    // which this library cannot observe: it is deliberately never released (a few bytes per registration).
    Ort::ThrowOnError(api->AddCustomOpDomain(options, domain));
    for (const OrtCustomOp* op : {bnn2onnx::BitPackOp(), bnn2onnx::BitUnpackOp(), bnn2onnx::BinaryConv2DOp(),
                                  bnn2onnx::BinaryDenseOp(), bnn2onnx::BinaryMaxPool2DOp()}) {
      Ort::ThrowOnError(api->CustomOpDomain_Add(domain, op));
    }
  });
}
