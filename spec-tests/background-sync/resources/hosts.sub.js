// The origins of the spec-tests' cross-origin subtests, under WPT's host names: the server
// substitutes the `{{…}}` templates in a file whose name has `.sub.` in it.
'use strict';

const HOSTS = {
  // This page's origin.
  same: 'https://{{host}}:{{ports[https][0]}}',
  // Same site, another origin (a subdomain).
  www: 'https://{{domains[www]}}:{{ports[https][0]}}',
  // Another site.
  alt: 'https://{{hosts[alt][]}}:{{ports[https][0]}}',
  // A subdomain of the other site.
  altWww: 'https://{{hosts[alt][www]}}:{{ports[https][0]}}',
};
