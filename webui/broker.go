package webui

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/homebox/gateway/webui/api"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/gateway/mosquittoconf"
	"github.com/homebox/gateway/internal/atomicfile"
	"github.com/homebox/gateway/webui/confflow"
)

// maxConf bounds a mosquitto.conf sent by a page.
const maxConf = 1 << 20

func (h *handlers) flow() (*confflow.Flow, error) {
	con := h.console()
	if con == nil || con.Flow == nil {
		return nil, newError(http.StatusServiceUnavailable, "the broker config editor is not running")
	}
	return con.Flow, nil
}

func (h *handlers) getConfig(c echo.Context) error {
	f, err := h.flow()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(f.ConfPath())
	if err != nil {
		return fmt.Errorf("read %s: %w", f.ConfPath(), err)
	}
	return c.JSON(http.StatusOK, api.ConfigText{Text: string(b), File: f.ConfPath()})
}

func readText(c echo.Context) ([]byte, error) {
	var t api.ConfigText
	if err := bind(c, &t); err != nil {
		return nil, err
	}
	if len(t.Text) > maxConf {
		return nil, newError(http.StatusRequestEntityTooLarge, fmt.Sprintf("text: at most %d bytes", maxConf))
	}
	return []byte(t.Text), nil
}

func lineErrors(ds []mosquittoconf.Diagnostic) []api.LineError {
	out := make([]api.LineError, 0, len(ds))
	for _, d := range ds {
		out = append(out, api.LineError{Line: d.Pos.Line, File: d.Pos.File, Option: d.Option, Message: d.Message})
	}
	return out
}

func (h *handlers) checkConfig(c echo.Context) error {
	f, err := h.flow()
	if err != nil {
		return err
	}
	text, err := readText(c)
	if err != nil {
		return err
	}
	_, ds := f.Check(text)
	return c.JSON(http.StatusOK, api.CheckResult{OK: ds.OK(), Errors: lineErrors(ds.Errors), Warnings: lineErrors(ds.Warnings)})
}

func (h *handlers) putConfig(c echo.Context) error {
	f, err := h.flow()
	if err != nil {
		return err
	}
	text, err := readText(c)
	if err != nil {
		return err
	}
	res, err := f.Run(c.Request().Context(), "config", func() ([]confflow.File, error) {
		return []confflow.File{{Path: f.ConfPath(), Kind: confflow.KindConf, Data: text}}, nil
	})
	return flowAnswer(c, http.StatusOK, res, err)
}

// flowAnswer turns what the flow says into the API's answer.
func flowAnswer(c echo.Context, okCode int, res confflow.Result, err error) error {
	var ce *confflow.CheckError
	var rb *confflow.RolledBackError
	var ae *apiError
	switch {
	case err == nil:
		return c.JSON(okCode, api.FlowResult{OK: true, Flow: res.Flow, Version: res.Version, Unchanged: res.Unchanged})
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ce):
		return &apiError{code: http.StatusUnprocessableEntity, body: map[string]any{
			"error": ce.Error(), "errors": lineErrors(ce.Diagnostics.Errors), "warnings": lineErrors(ce.Diagnostics.Warnings)}}
	case errors.As(err, &rb):
		body := api.RolledBack{Error: rb.Error(), RolledBack: rb.RestoreErr == nil, BrokerError: rb.BrokerError,
			Log: rb.Log, Flow: rb.Flow, Cause: rb.Cause.Error()}
		if body.Log == nil {
			body.Log = []string{}
		}
		code := http.StatusConflict
		if rb.RestoreErr != nil {
			body.RestoreError = rb.RestoreErr.Error()
			code = http.StatusInternalServerError
		}
		return &apiError{code: code, body: body}
	case errors.Is(err, confflow.ErrOutside):
		return newError(http.StatusConflict, err.Error())
	case errors.Is(err, confflow.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, err.Error())
	}
	return err
}

func (h *handlers) history(c echo.Context) error {
	f, err := h.flow()
	if err != nil {
		return err
	}
	if f.History() == nil {
		return newError(http.StatusServiceUnavailable, "the config history is not kept here")
	}
	list, err := f.History().List(confflow.KindConf)
	if err != nil {
		return err
	}
	out := make([]api.HistoryEntry, 0, len(list))
	for _, e := range list {
		out = append(out, api.HistoryEntry(e))
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) readVersion(c echo.Context) (*confflow.Flow, api.HistoryVersion, error) {
	f, err := h.flow()
	if err != nil {
		return nil, api.HistoryVersion{}, err
	}
	if f.History() == nil {
		return nil, api.HistoryVersion{}, newError(http.StatusServiceUnavailable, "the config history is not kept here")
	}
	e, data, err := f.History().Read(confflow.KindConf, c.Param("id"))
	if errors.Is(err, confflow.ErrNotFound) {
		return nil, api.HistoryVersion{}, newError(http.StatusNotFound, fmt.Sprintf("no version %q in the history", c.Param("id")))
	}
	if err != nil {
		return nil, api.HistoryVersion{}, err
	}
	return f, api.HistoryVersion{HistoryEntry: api.HistoryEntry(e), Text: string(data)}, nil
}

func (h *handlers) historyOne(c echo.Context) error {
	_, v, err := h.readVersion(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h *handlers) restore(c echo.Context) error {
	f, v, err := h.readVersion(c)
	if err != nil {
		return err
	}
	res, err := f.Run(c.Request().Context(), "restore", func() ([]confflow.File, error) {
		return []confflow.File{{Path: f.ConfPath(), Kind: confflow.KindConf, Data: []byte(v.Text)}}, nil
	})
	return flowAnswer(c, http.StatusOK, res, err)
}

// flowAndConf is the config flow and the checked conf on the box, for the
// handlers that read the conf before they change anything.
func (h *handlers) flowAndConf() (*confflow.Flow, *mosquittoconf.Config, error) {
	f, err := h.flow()
	if err != nil {
		return nil, nil, err
	}
	_, cfg, err := currentConf(f)
	return f, cfg, err
}

// currentConf reads and checks the conf on disk (under the flow's lock when
// called from a prepare function).
func currentConf(f *confflow.Flow) ([]byte, *mosquittoconf.Config, error) {
	data, err := os.ReadFile(f.ConfPath())
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", f.ConfPath(), err)
	}
	cfg, ds := f.Check(data)
	if !ds.OK() {
		return data, nil, &apiError{code: http.StatusConflict, body: api.Error{
			Error:  "mosquitto.conf on the box has errors: fix them in the config editor first",
			Errors: lineErrors(ds.Errors)}}
	}
	return data, cfg, nil
}

// confCache keeps the bridge names of the conf on disk, re-read when the
// file changes, for the statistics that are asked for every second.
type confCache struct {
	mod     time.Time
	size    int64
	bridges []string
}

func (h *handlers) confBridges(f *confflow.Flow) []string {
	st, err := os.Stat(f.ConfPath())
	if err != nil {
		return nil
	}
	h.confMu.Lock()
	defer h.confMu.Unlock()
	if st.ModTime().Equal(h.conf.mod) && st.Size() == h.conf.size {
		return h.conf.bridges
	}
	_, cfg, err := currentConf(f)
	h.conf = confCache{mod: st.ModTime(), size: st.Size()}
	if err == nil {
		for _, b := range cfg.Bridges {
			h.conf.bridges = append(h.conf.bridges, b.Name)
		}
	}
	return h.conf.bridges
}

// Certificate uploads.

const maxCert = 256 << 10

// validCertName: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot.
func validCertName(s string) bool { return asciiWord(s, 1, 64, "._-") && s[0] != '.' }

// CertName cleans an uploaded file's name into a plain file name for the
// certs folder: letters, digits, "-_." only, no leading dot, at most 64.
func CertName(name string) (string, error) {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if len(out) > 64 {
		out = out[len(out)-64:]
		out = strings.TrimLeft(out, ".")
	}
	if !validCertName(out) || out == "." || out == ".." {
		return "", fmt.Errorf("name %q: use letters, digits, '-', '_' and '.'", name)
	}
	return out, nil
}

func (h *handlers) certsDir() (string, error) {
	con := h.console()
	if con == nil || con.CertsDir == "" {
		return "", newError(http.StatusServiceUnavailable, "certificate uploads are not running")
	}
	return con.CertsDir, nil
}

func (h *handlers) certs(c echo.Context) error {
	dir, err := h.certsDir()
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out := []api.CertFile{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !validCertName(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out = append(out, api.CertFile{Name: e.Name(), Size: fi.Size()})
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) uploadCert(c echo.Context) error {
	dir, err := h.certsDir()
	if err != nil {
		return err
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return newError(http.StatusBadRequest, "file: send the certificate as the multipart field \"file\"", api.LineError{Field: "file", Message: "missing"})
	}
	name := c.FormValue("name")
	if name == "" {
		name = fh.Filename
	}
	clean, err := CertName(name)
	if err != nil {
		return newError(http.StatusBadRequest, err.Error(), api.LineError{Field: "name", Message: err.Error()})
	}
	if fh.Size > maxCert {
		return newError(http.StatusRequestEntityTooLarge, fmt.Sprintf("file: at most %d KiB", maxCert>>10))
	}
	src, err := fh.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	data, err := io.ReadAll(io.LimitReader(src, maxCert+1))
	if err != nil {
		return err
	}
	if len(data) > maxCert {
		return newError(http.StatusRequestEntityTooLarge, fmt.Sprintf("file: at most %d KiB", maxCert>>10))
	}
	if !hasCertificate(data) {
		return newError(http.StatusBadRequest, "file: not a PEM file with a CERTIFICATE block", api.LineError{Field: "file", Message: "not a PEM certificate"})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	target := filepath.Join(dir, clean)
	if _, err := os.Lstat(target); err == nil {
		return newError(http.StatusConflict, fmt.Sprintf("a certificate named %q is already there: choose another name", clean),
			api.LineError{Field: "name", Message: "already there"})
	}
	if err := atomicfile.Write(target, data, 0o644); err != nil {
		return err
	}
	h.d.Logger.Info("console: certificate uploaded", "file", target)
	return c.JSON(http.StatusCreated, api.CertFile{Name: clean, Size: int64(len(data))})
}

func hasCertificate(data []byte) bool {
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" {
			return true
		}
	}
	return false
}
