// Served at /resources/testharnessreport.js: sends the harness's results to the runner, with
// lone surrogates written as U+XXXX so the report is valid Unicode.
(function () {
  'use strict';
  const escape = (s) => (s === null || s === undefined ? null : String(s).replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, (c) => `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`));
  add_completion_callback((tests, status) => {
    __bgsyncHostReport(JSON.stringify({
      status: status.status,
      message: escape(status.message),
      tests: tests.map((t) => ({ name: escape(t.name), status: t.status, message: escape(t.message) })),
    }));
  });
})();
