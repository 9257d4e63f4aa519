// Package replayrecord records the committed replay histories of kok's workflows
// (workflows/*/testdata/*.json): each test runs one workflow down one path on an in-process
// Temporal server, with the real workflow registration and fake activities registered under the
// activities' wire names, then writes the run's history (and its children's) as JSON.
//
// The tests run only with KOK_RECORD_HISTORIES=1: a recording is made once per workflow version,
// from the code of that version, and committed; the replay tests beside the workflows replay
// every committed history against today's code. See docs/design/2026-12-02-replay-histories.md.
package replayrecord
