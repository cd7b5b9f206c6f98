package explorer_test

import (
	"net/http"
	"strings"
	"testing"
)

// Bad names under /static/ are a 404, never a 500, a stack trace or a file
// from outside the embedded static directory.
func TestStaticRefusesBadPaths(t *testing.T) {
	tn := startNet(t, 1)
	if code, body := tn.get("/static/style.css", ""); code != http.StatusOK || !strings.Contains(body, "{") {
		t.Fatalf("GET /static/style.css: %d", code)
	}
	for _, p := range []string{
		"/static/%ff",
		"/static/%c0%ae%c0%ae%2f",
		"/static/%c0%ae%c0%ae%2fexplorer.go",
		"/static/%c0%ae%c0%ae/templates/layout.html",
		"/static/..%2fexplorer.go",
		"/static/%2e%2e%2ftemplates%2flayout.html",
		"/static/..%5cexplorer.go",
		"/static/%5c..%5c..%5cgo.mod",
		"/static/./style.css%00",
		"/static/style.css%ff",
		"/static/",
		"/static/nope.js",
	} {
		code, body := tn.get(p, "")
		if code != http.StatusNotFound && code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 404 or 400", p, code)
		}
		for _, leak := range []string{"goroutine", "package explorer", "{{", "module cissan", "verify.js"} {
			if strings.Contains(body, leak) {
				t.Errorf("GET %s: answer shows %q", p, leak)
			}
		}
	}
}
