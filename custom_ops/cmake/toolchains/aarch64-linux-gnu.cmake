# Cross-building the library for aarch64 Linux with Debian's aarch64-linux-gnu cross compiler
# (cmake -DCMAKE_TOOLCHAIN_FILE=custom_ops/cmake/toolchains/aarch64-linux-gnu.cmake ...).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
