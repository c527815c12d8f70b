# Finds latent's dependencies and attaches them to an INTERFACE target. The installed package
# config (latentConfig.cmake) includes this same file, so consumers resolve them identically.
#   Eigen3 (required): linked as the imported target, so consumers see its headers as SYSTEM
#     includes and Eigen's warnings never reach a -Werror build.
#   ZLIB (required): the IDX reader opens .gz files.
#   stb (required, pkg-config module "stb", Debian's libstb-dev): image reading and PNG writing.
#     libstb holds stb's compiled implementation exactly once per program, so any number of
#     translation units -- and the user's own stb code -- can include the stb headers.
#   OpenMP (optional, LATENT_USE_OPENMP): threads over the batch.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.3 NO_MODULE)
find_dependency(ZLIB)
find_dependency(PkgConfig)
pkg_check_modules(LATENT_STB REQUIRED IMPORTED_TARGET stb)
if(NOT DEFINED LATENT_USE_OPENMP)
  set(LATENT_USE_OPENMP ON)
endif()
if(LATENT_USE_OPENMP)
  find_package(OpenMP COMPONENTS CXX QUIET)
endif()

function(latent_link_dependencies target)
  target_link_libraries(${target} INTERFACE Eigen3::Eigen ZLIB::ZLIB PkgConfig::LATENT_STB)
  if(LATENT_USE_OPENMP AND OpenMP_CXX_FOUND)
    target_link_libraries(${target} INTERFACE OpenMP::OpenMP_CXX)
    target_compile_definitions(${target} INTERFACE LATENT_USE_OPENMP=1)
  endif()
endfunction()
