// Package host holds the activities kok-agent runs on its own host: facts about the host;
// EnsurePackage (install, upgrade in either direction, and drift repair, as one idempotent
// step), RemovePackage, CheckHealth and Reboot. It must never import Kubernetes clients: agents
// only talk to Temporal, so 10,000 of them add no load to any API server.
//
// The agent's record of the host lives under the host root (StateFile), replaced atomically and
// only once a step has completed; a change under way is recorded as pending first, so an agent
// killed half way finishes the change on the next attempt without repeating what was done. Every
// artifact's digest is checked before anything changes, and a change whose service does not
// start is rolled back to the previous version, running.
package host
