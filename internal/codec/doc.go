// Package codec encrypts Temporal payloads so that secrets handed to workflows and activities
// (PKI material, kubeconfigs, tokens) never reach the Temporal server, its database or its
// history exports in clear.
//
// Every payload is sealed with AES-256-GCM under the keyring's active key, and the key ID travels
// in the payload metadata. Decoding picks the key by that ID, so a keyring that keeps its old keys
// still reads histories written before a rotation. The same codec serves the Temporal codec-server
// HTTP protocol (NewHTTPHandler), which lets the Web UI and the Temporal CLI show decoded payloads
// to the people allowed to reach it.
//
// The key file is JSON, readable and writable only by its owner:
//
//	{
//	  "active": "2026-11-26-1f0c9a2b",
//	  "keys": {
//	    "2026-11-26-1f0c9a2b": "<base64 of 32 random bytes>",
//	    "2026-05-02-77d1e0aa": "<base64 of 32 random bytes>"
//	  }
//	}
//
// GenerateKeyFile writes a new one; RotateKeyFile adds a key and makes it active.
//
// This package is linked into kok-agent, so it must stay free of the Temporal server and of
// Kubernetes clients.
package codec
