// Package manager assembles kok-manager: one controller-runtime manager (watchers, leader
// election, health and metrics endpoints) and one Temporal worker on the kok-control queue that
// runs the workflows and control activities. Both live in one process so a single Deployment
// serves a meta cluster; the worker runs on every replica (Temporal spreads tasks), the
// watchers only on the leader (two watchers signalling the same workflow would be harmless, but
// it doubles the API-server load for nothing).
package app
