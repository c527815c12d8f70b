# latent's dependencies, listed once for both places that need them:
#   BUILD    latent's own configure step (CMakeLists.txt, also under add_subdirectory and
#            FetchContent): a missing required dependency stops the configure step.
#   PACKAGE  the installed latentConfig.cmake: a missing dependency makes find_package(latent)
#            report latent as not found and say which dependency is missing (the
#            find_dependency() convention), so consumers never have to find them themselves.
#
#   Eigen3 (required): linked as the imported target, so consumers see its headers as SYSTEM
#     includes and Eigen's warnings never reach a -Werror build.
#   ZLIB (required): the IDX reader opens .gz files.
#   PNG (required, Debian's libpng-dev) and JPEG (required, libjpeg62-turbo-dev): decoding PNG
#     and JPEG files, which may be untrusted, with libraries that are maintained and fuzzed.
#   nlohmann_json (required, Debian's nlohmann-json3-dev, header-only): the JSON header of
#     .safetensors weight files, which may be hostile -- a maintained, fuzzed parser.
#   stb (required, pkg-config module "stb", Debian's libstb-dev): BMP reading and PNG writing.
#     libstb holds stb's compiled implementation exactly once per program, so any number of
#     translation units -- and the user's own stb code -- can include the stb headers.
#   Threads (required, the platform's thread library, through CMake's FindThreads): latent's
#     own threads work on the batch, and streamed data sources read ahead on threads of their
#     own (which stay when LATENT_USE_THREADS=OFF makes the batch's work serial).
include(CMakeFindDependencyMacro)

# latent_find_dependencies(<BUILD|PACKAGE>)
# A macro, not a function: find_dependency() must be able to return() from the package config,
# and the targets it creates must be visible where find_package(latent) was called.
macro(latent_find_dependencies latent_context)
  if("${latent_context}" STREQUAL "PACKAGE")
    set(_latent_in_package ON)
  else()
    set(_latent_in_package OFF)
  endif()

  _latent_require_package(Eigen3 3.3 NO_MODULE)
  _latent_require_package(ZLIB)
  _latent_require_package(PNG)
  _latent_require_package(JPEG)
  _latent_require_package(nlohmann_json 3.2)
  _latent_require_package(PkgConfig)
  if(NOT TARGET PkgConfig::LATENT_STB)
    pkg_check_modules(LATENT_STB QUIET IMPORTED_TARGET stb)
  endif()
  if(NOT TARGET PkgConfig::LATENT_STB)
    _latent_missing("stb (pkg-config module \"stb\"; Debian and Ubuntu package: libstb-dev)")
  endif()

  set(THREADS_PREFER_PTHREAD_FLAG ON)
  _latent_require_package(Threads)
endmacro()

# latent_link_dependencies(<target> <threads>): attaches the dependencies to the INTERFACE
# target, and the LATENT_USE_THREADS=0 definition the headers test when <threads> is false.
function(latent_link_dependencies target threads)
  target_link_libraries(${target} INTERFACE Eigen3::Eigen ZLIB::ZLIB PNG::PNG JPEG::JPEG nlohmann_json::nlohmann_json
                                            PkgConfig::LATENT_STB Threads::Threads)
  if(NOT threads)
    target_compile_definitions(${target} INTERFACE LATENT_USE_THREADS=0)
  endif()
endfunction()

# find_package() of a dependency latent cannot do without, in the manner of the context.
macro(_latent_require_package)
  if(_latent_in_package)
    find_dependency(${ARGN})
  else()
    find_package(${ARGN} REQUIRED)
  endif()
endmacro()

# Reports a required dependency that no find_package() module covers (stb) as missing.
macro(_latent_missing what)
  if(_latent_in_package)
    set(latent_NOT_FOUND_MESSAGE "latent needs ${what}, which was not found")
    set(latent_FOUND FALSE)
    return()
  else()
    message(FATAL_ERROR "latent needs ${what}, which was not found")
  endif()
endmacro()
