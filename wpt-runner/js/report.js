// Served at /resources/testharnessreport.js (a page loads it right after testharness.js): hands
// the harness's results to the runner, in the shape of the message a worker's harness posts
// ({type: 'complete', tests, status}). Like wptrunner's own report script, it turns the
// harness's on-page output off and leaves time-outs to the runner.
(function () {
  'use strict';
  setup({ output: false, explicit_timeout: true });
  add_completion_callback((tests, status) => {
    __bgsyncHostReport({
      type: 'complete',
      tests: tests.map((t) => ({ name: t.name, status: t.status, message: t.message })),
      status: { status: status.status, message: status.message },
    });
  });
})();
