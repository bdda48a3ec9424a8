// Package pages is the LAN console's browser side: server-rendered page
// shells (html/template), one hand-written stylesheet and one small
// hand-written script, all embedded so the box's single binary carries them.
//
// The pages hold no data of their own: the script fills them from the JSON
// API under /api (the same routes gwctl uses) and keeps them live from the
// /api/events stream. So the pages never see a secret and never drift from
// what the API says, and a part of the box that is not running shows up as
// "unavailable" the way the API reports it.
package pages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Options configure the pages.
type Options struct {
	// Version is shown in the footer.
	Version string
	// Logger receives template errors; nothing is logged when nil.
	Logger *slog.Logger
}

// page is one route's shell.
type page struct {
	name  string // template file without .html; also body[data-page]
	title string
	nav   string // which menu entry is current
}

// data is what every template gets.
type data struct {
	Page    string
	Title   string
	Nav     string
	Param   string // the {name} or {id} of the path, for detail pages
	Version string
	Menu    []menuItem
}

type menuItem struct {
	Href, Label, Key string
}

var menu = []menuItem{
	{"/", "Overview", "overview"},
	{"/apps", "Apps", "apps"},
	{"/broker/config", "Broker config", "config"},
	{"/bridges", "Bridges", "bridges"},
	{"/devices", "Devices", "devices"},
	{"/topics", "Topics", "topics"},
	{"/broker/users", "Broker users", "users"},
	{"/system", "System", "system"},
}

// routes maps each path pattern to its page. {param} parts end up in
// data.Param.
var routes = []struct {
	pattern string
	page    page
}{
	{"GET /{$}", page{"overview", "Overview", "overview"}},
	{"GET /apps", page{"apps", "Apps", "apps"}},
	{"GET /apps/{param}", page{"app", "App", "apps"}},
	{"GET /broker/config", page{"config", "Broker config", "config"}},
	{"GET /bridges", page{"bridges", "Bridges", "bridges"}},
	{"GET /bridges/new", page{"bridge", "New bridge", "bridges"}},
	{"GET /bridges/{param}", page{"bridge", "Edit bridge", "bridges"}},
	{"GET /devices", page{"devices", "Devices", "devices"}},
	{"GET /devices/{param}", page{"device", "Device", "devices"}},
	{"GET /broker/users", page{"users", "Broker users", "users"}},
	{"GET /topics", page{"topics", "Topics", "topics"}},
	{"GET /system", page{"system", "System", "system"}},
	{"GET /setup", page{"setup", "Set the admin password", ""}},
	{"GET /login", page{"login", "Log in", ""}},
}

// Handler serves every page and asset; mount it for every path outside
// /api. It panics when an embedded template does not parse, which a test
// catches before any build ships.
func Handler(opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tpls := parseTemplates()
	mux := http.NewServeMux()
	for _, r := range routes {
		p := r.page
		t := tpls[p.name]
		mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) {
			render(w, req, log, t, http.StatusOK, data{
				Page: p.name, Title: p.title, Nav: p.nav, Param: req.PathValue("param"),
				Version: opts.Version, Menu: menu,
			})
		})
	}
	assets, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(fmt.Sprintf("pages: assets: %v", err))
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(assets))
	mux.HandleFunc("GET /assets/", func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/") { // no folder listings
			http.NotFound(w, req)
			return
		}
		// Assets change with the binary; a short cache keeps an upgrade visible.
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, req)
	})
	notFound := tpls["notfound"]
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		render(w, req, log, notFound, http.StatusNotFound, data{
			Page: "notfound", Title: "Not found", Version: opts.Version, Menu: menu,
		})
	})
	return mux
}

func render(w http.ResponseWriter, req *http.Request, log *slog.Logger, t *template.Template, status int, d data) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		log.Error("pages: render", "page", d.Page, "path", req.URL.Path, "error", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	// Only our own script and style; no inline script at all.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// parseTemplates pairs the layout with each page's template.
func parseTemplates() map[string]*template.Template {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t := template.Must(template.New(base).ParseFS(templateFS, "templates/layout.html", n))
		out[base] = t
	}
	return out
}
