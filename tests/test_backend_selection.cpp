// Backend selection: cpu always works, Auto falls back to cpu without a device,
// the CUDA device list agrees with cuda_available(), bad device ids are refused.
#include <chrono>

#include "test_util.hpp"

namespace veil::test {
namespace {

TEST(BackendSelection, DeviceListAgreesWithAvailability) {
  const auto devices = cuda_devices();
  EXPECT_EQ(cuda_available(), !devices.empty());
  if (!cuda_built()) EXPECT_TRUE(devices.empty());
  for (const auto& d : devices) EXPECT_FALSE(d.empty());
}

TEST(BackendSelection, AutoAndCpuContexts) {
  auto params = Parameters::preset(13);
  auto cpu = Context::create(params, BackendKind::Cpu, 7);  // the device id is ignored for cpu
  EXPECT_EQ(cpu->backend().name(), "cpu");
  auto autoc = Context::create(params, BackendKind::Auto);
  EXPECT_EQ(autoc->backend().name(), cuda_available() ? "cuda" : "cpu");
}

TEST(BackendSelection, CudaWithoutDeviceOrWithABadIdThrows) {
  auto params = Parameters::preset(13);
  try {
    Context::create(params, BackendKind::Cuda, 1000);
    ADD_FAILURE() << "no error for CUDA device 1000";
  } catch (const Error& e) {
    // Unsupported when nothing is present (or not built), InvalidArgument for a missing id.
    EXPECT_EQ(e.code(), cuda_available() ? ErrorCode::InvalidArgument : ErrorCode::Unsupported) << e.what();
  }
  if (!cuda_available()) {
    EXPECT_THROW(Context::create(params, BackendKind::Cuda), Error);
  }
  if (cuda_available()) EXPECT_THROW(Context::create(params, BackendKind::Cuda, -1), Error);
}

TEST(BackendSelection, CpuTimerMeasuresWallClock) {
  auto ctx = Context::create(Parameters::preset(13));
  Backend& be = ctx->backend();
  be.synchronize();  // a no-op on the cpu, but callable
  be.timer_start();
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(20)) {
  }
  const double ms = be.timer_stop_ms();
  EXPECT_GE(ms, 19.0);
  EXPECT_LT(ms, 5000.0);
  EXPECT_EQ(cuda_peak_bandwidth_gbs(-1), 0.0);
}

}  // namespace
}  // namespace veil::test
