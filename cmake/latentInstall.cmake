# install(EXPORT) + a relocatable config package with a version file, so that
#   find_package(latent REQUIRED)  ->  target latent::latent
# works after `cmake --install`. The package is architecture-independent (header-only).
include(CMakePackageConfigHelpers)
set(LATENT_CONFIG_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/cmake/latent")

install(DIRECTORY include/latent DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(FILES LICENSE DESTINATION "${CMAKE_INSTALL_DOCDIR}")  # the MIT terms travel with copies
install(TARGETS latent EXPORT latentTargets)
install(EXPORT latentTargets NAMESPACE latent:: DESTINATION "${LATENT_CONFIG_INSTALL_DIR}")

configure_package_config_file(cmake/latentConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/latentConfig.cmake"
  INSTALL_DESTINATION "${LATENT_CONFIG_INSTALL_DIR}")
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/latentConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/latentConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/latentConfigVersion.cmake"
  cmake/latentDependencies.cmake
  DESTINATION "${LATENT_CONFIG_INSTALL_DIR}")
