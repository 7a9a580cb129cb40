# Cross-building the library for armv7 Linux with Debian's arm-linux-gnueabihf cross compiler
# (cmake -DCMAKE_TOOLCHAIN_FILE=custom_ops/cmake/toolchains/arm-linux-gnueabihf.cmake ...).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
