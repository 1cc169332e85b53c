// Served at /resources/testdriver-vendor.js: this user agent implements test_driver's
// set_permission natively (test_driver_internal.set_permission); nothing else is needed.
if (self.test_driver_internal) self.test_driver_internal.in_automation = true;
