// Served at /resources/testdriver-vendor.js, which WPT tests load after testdriver.js: plugs
// this user agent's automation into WPT's test_driver, as a browser vendor's file does. When
// WPT's testdriver.js has not replaced the user agent's built-in driver, nothing is needed.
if (self.test_driver_internal && !self.test_driver_internal.bgsyncBuiltIn) {
  self.test_driver_internal.in_automation = true;
  self.test_driver_internal.set_permission = (params) => self.__bgsyncSetPermission(params);
  // Every other action needs a DOM or WebDriver, which this user agent does not have: it rejects
  // with a message that says so, and the subtest that asked fails, not the whole test.
  const supported = new Set(['set_permission', 'set_test_context', 'message_test']);
  for (const name of Object.keys(self.test_driver)) {
    const value = self.test_driver[name];
    if (typeof value !== 'function' || supported.has(name)) continue;
    self.test_driver[name] = () => Promise.reject(new Error(
      `test_driver.${name} is not supported by bgsync's QuickJS user agent (no DOM, no WebDriver); it supports test_driver.set_permission`));
  }
}
