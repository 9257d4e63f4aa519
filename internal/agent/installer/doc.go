// Package installer puts package versions on a host and takes them off again, behind one
// interface with three implementations:
//
//   - Local unpacks a tar.gz artifact into <root>/opt/kok/packages/<name>/<version>/ (through a
//     temporary directory and a rename, so a kill mid-unpack never leaves half a version) and
//     switches a "current" symlink atomically; the previous version stays on disk, so rolling
//     back is a symlink switch.
//   - Deb installs .deb files with dpkg (an alternate root, as tests and simulated hosts use)
//     or apt-get (the real system, so dependencies resolve from the host's repositories).
//   - RPM installs .rpm files with rpm (alternate root) or dnf and rpm (the real system).
//
// Every installer checks before it acts, so running a step twice changes nothing the second
// time. None of them downloads or verifies artifacts: callers pass a file whose digest has
// already been checked (package fetch).
package installer
