package tclient

import (
	"net/url"
	"strings"
)

// WebUIURL links to a workflow in the Temporal Web UI at base (e.g. http://127.0.0.1:8233).
// Without runID it links to the workflow's latest run. Workflow IDs contain '/'
// (<kind>/<cluster>/<name>), so every segment is escaped. An empty base gives an empty link, for
// callers that have no Web UI configured.
func WebUIURL(base, namespace, workflowID, runID string) string {
	if base == "" {
		return ""
	}
	link := strings.TrimRight(base, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/" + url.PathEscape(workflowID)
	if runID != "" {
		link += "/" + url.PathEscape(runID) + "/history"
	}
	return link
}
