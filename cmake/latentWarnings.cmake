# Warning and sanitizer flags for latent's own tests, examples and benchmarks (never for consumers).
function(latent_project_options target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(LATENT_SANITIZE)
      target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                               -fno-sanitize-recover=undefined)
      target_link_options(${target} PRIVATE -fsanitize=address,undefined)
      # Sanitizer reports need only function names and line tables (-g1, after the build type's
      # -g); full debug info of the Eigen templates costs 28% more compile time (test_conv.cpp).
      target_compile_options(${target} PRIVATE $<$<CONFIG:RelWithDebInfo>:-g1>)
      # GCC's manual: sanitizers "tend to increase the rate of false positive warnings, most
      # notably those around -Wmaybe-uninitialized". g++ 12 + ASan at -O2 raises them inside
      # libstdc++'s <regex> (via Catch2). The optimised build without sanitizers keeps the warning.
      if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
        target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
      endif()
    endif()
  endif()
endfunction()

if(LATENT_SANITIZE AND NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(WARNING "LATENT_SANITIZE: AddressSanitizer/UBSan flags are set for GCC and Clang only")
endif()
