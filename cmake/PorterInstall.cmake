# cmake --install puts the headers, the library and a package config in place,
# so an application can find_package(porter) and link porter::porter.
include(CMakePackageConfigHelpers)

install(TARGETS porter EXPORT porterTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/porter DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  PATTERN "sqlite_store.h" EXCLUDE)
if(PORTER_WITH_SQLITE)
  install(FILES ${PROJECT_SOURCE_DIR}/include/porter/sqlite_store.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/porter)
endif()

set(PORTER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/porter)
install(EXPORT porterTargets NAMESPACE porter:: DESTINATION ${PORTER_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/porterConfig.cmake.in
  ${PROJECT_BINARY_DIR}/porterConfig.cmake INSTALL_DESTINATION ${PORTER_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/porterConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/porterConfig.cmake ${PROJECT_BINARY_DIR}/porterConfigVersion.cmake
  DESTINATION ${PORTER_CMAKE_DIR})
