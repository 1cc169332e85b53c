// Served at /resources/testdriver-vendor.js, which WPT tests load after testdriver.js: plugs
// this user agent's automation into WPT's test_driver, as a browser vendor's file does. When
// WPT's testdriver.js has not replaced the user agent's built-in driver, nothing is needed.
if (self.test_driver_internal && !self.test_driver_internal.bgsyncBuiltIn) {
  self.test_driver_internal.in_automation = true;
  self.test_driver_internal.set_permission = (params) => self.__bgsyncSetPermission(params);
}
