// stb_image compiled into the fuzz programs, so that the sanitizers and the fuzzer's coverage
// see inside its BMP decoder (the definitions here take precedence over the shared libstb).
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
