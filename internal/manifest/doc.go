// Package manifest writes kok objects as the YAML a user would write and apply with kubectl:
// apiVersion, kind, metadata.name and spec, nothing the server sets. The catalogue generators
// use it.
package manifest
