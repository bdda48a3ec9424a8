package pages_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/homebox/gateway/webui/pages"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestEveryPageIsDrawn(t *testing.T) {
	srv := httptest.NewServer(pages.Handler(pages.Options{Version: "v9.8.7"}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ path, page, param, title string }{
		{"/", "overview", "", "Overview"},
		{"/apps", "apps", "", "Apps"},
		{"/apps/home-assistant", "app", "home-assistant", "App"},
		{"/broker/config", "config", "", "Broker config"},
		{"/bridges", "bridges", "", "Bridges"},
		{"/bridges/new", "bridge", "", "New bridge"},
		{"/bridges/cloud", "bridge", "cloud", "Edit bridge"},
		{"/devices", "devices", "", "Devices"},
		{"/devices/0x00158d0001a2b3c4", "device", "0x00158d0001a2b3c4", "Device"},
		{"/broker/users", "users", "", "Broker users"},
		{"/setup", "setup", "", "Set the admin password"},
		{"/login", "login", "", "Log in"},
	} {
		res, body := get(t, srv, http.MethodGet, tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", tc.path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", tc.path, ct)
		}
		if !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no CSP restricting scripts: %q", tc.path, res.Header.Get("Content-Security-Policy"))
		}
		want := `<body data-page="` + tc.page + `" data-param="` + tc.param + `">`
		if !strings.Contains(body, want) {
			t.Errorf("GET %s: body lacks %s", tc.path, want)
		}
		if !strings.Contains(body, "<title>"+tc.title+" · Gateway</title>") {
			t.Errorf("GET %s: title is not %q", tc.path, tc.title)
		}
		if !strings.Contains(body, "Gateway v9.8.7") {
			t.Errorf("GET %s: footer lacks the version", tc.path)
		}
		// No inline script: the CSP forbids it, so the page would break.
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(body) || strings.Contains(body, " onclick=") {
			t.Errorf("GET %s: has an inline script", tc.path)
		}
	}
}

func TestMenuMarksTheCurrentPage(t *testing.T) {
	srv := httptest.NewServer(pages.Handler(pages.Options{}))
	t.Cleanup(srv.Close)
	_, body := get(t, srv, http.MethodGet, "/bridges/cloud")
	if n := strings.Count(body, `aria-current="page"`); n != 1 {
		t.Fatalf("%d entries marked current, want 1", n)
	}
	if !strings.Contains(body, `<a href="/bridges" aria-current="page">Bridges</a>`) {
		t.Errorf("Bridges is not the current entry:\n%s", body)
	}
	// Login and setup have no menu: nothing there works before a login.
	_, body = get(t, srv, http.MethodGet, "/login")
	if strings.Contains(body, `aria-label="Main"`) {
		t.Error("the login page shows the menu")
	}
}

func TestParamIsEscaped(t *testing.T) {
	srv := httptest.NewServer(pages.Handler(pages.Options{}))
	t.Cleanup(srv.Close)
	res, body := get(t, srv, http.MethodGet, `/apps/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if strings.Contains(body, "<script>alert") {
		t.Fatalf("the path's name went into the page unescaped:\n%s", body)
	}
	if !strings.Contains(body, `data-param="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Errorf("param not kept escaped:\n%s", body)
	}
}

func TestAssets(t *testing.T) {
	srv := httptest.NewServer(pages.Handler(pages.Options{}))
	t.Cleanup(srv.Close)
	for path, ctype := range map[string]string{
		"/assets/app.css": "text/css; charset=utf-8",
		"/assets/app.js":  "text/javascript; charset=utf-8",
	} {
		res, body := get(t, srv, http.MethodGet, path)
		if res.StatusCode != http.StatusOK || len(body) < 1000 {
			t.Errorf("GET %s: status %d, %d bytes", path, res.StatusCode, len(body))
		}
		if got := res.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
	}
	if res, _ := get(t, srv, http.MethodGet, "/assets/nothing.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: status %d", res.StatusCode)
	}
	// The folder is not listed.
	if res, body := get(t, srv, http.MethodGet, "/assets/"); res.StatusCode == http.StatusOK && strings.Contains(body, "app.js") {
		t.Errorf("asset folder listed: %s", body)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	srv := httptest.NewServer(pages.Handler(pages.Options{}))
	t.Cleanup(srv.Close)
	res, body := get(t, srv, http.MethodGet, "/no/such/page")
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "There is no page at this address") {
		t.Errorf("unknown page: status %d body %q", res.StatusCode, body)
	}
	res, _ = get(t, srv, http.MethodPost, "/broker/config")
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to a page: status %d, want 405", res.StatusCode)
	}
	res, body = get(t, srv, http.MethodHead, "/apps")
	if res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: status %d body %q", res.StatusCode, body)
	}
}
