// Package queue names kok's Temporal task queues: wire API shared by the workflows that schedule
// work, the watchers that start workflows, and the workers and agents that poll.
package queue
