package confflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/homebox/gateway/internal/atomicfile"
)

// DefaultKeep is how many versions of each file a History keeps.
const DefaultKeep = 20

// ErrNotFound is returned for a history id that is not (or no longer) kept.
var ErrNotFound = errors.New("no such version in the history")

// Entry describes one kept version.
type Entry struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Size   int       `json:"size"`
	Reason string    `json:"reason"`
	// Change is what the save that replaced this version changed, and
	// Outcome how that save ended: applied, or rolled back (this version
	// is then the one in force again). Both are empty on older entries.
	Change  string `json:"change,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

// Outcomes of the save that replaced a kept version.
const (
	OutcomeApplied    = "applied"
	OutcomeRolledBack = "rolled back"
)

// History keeps earlier versions of files, by kind (a fixed name the
// program chooses, such as "mosquitto.conf"), in dir/<kind>/. Ids are made
// here and checked on the way in, so a caller's id never becomes a path.
type History struct {
	dir  string
	keep int
	mu   sync.Mutex
	now  func() time.Time
}

// NewHistory keeps up to keep versions of each kind under dir (keep <= 0
// means DefaultKeep).
func NewHistory(dir string, keep int) *History {
	if keep <= 0 {
		keep = DefaultKeep
	}
	return &History{dir: dir, keep: keep, now: time.Now}
}

// Dir is the history's folder.
func (h *History) Dir() string { return h.dir }

var (
	kindRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	idRE   = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{9}Z(-[0-9]{1,4})?$`)
)

const idLayout = "20060102T150405.000000000Z"

func (h *History) kindDir(kind string) (string, error) {
	if !kindRE.MatchString(kind) {
		return "", fmt.Errorf("history kind %q is not a plain name", kind)
	}
	return filepath.Join(h.dir, kind), nil
}

// Save keeps data as a new version of kind and drops the oldest versions
// beyond the limit.
func (h *History) Save(kind string, data []byte, reason string) (Entry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dir, err := h.kindDir(kind)
	if err != nil {
		return Entry{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Entry{}, fmt.Errorf("history: %w", err)
	}
	now := h.now().UTC()
	id := now.Format(idLayout)
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, id+".data")); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if i > 9999 {
			return Entry{}, fmt.Errorf("history: too many versions at %s", now)
		}
		id = fmt.Sprintf("%s-%d", now.Format(idLayout), i)
	}
	e := Entry{ID: id, Time: now, Size: len(data), Reason: reason}
	meta, err := json.Marshal(e)
	if err != nil {
		return Entry{}, err
	}
	// The data goes first: an entry is listed by its meta file, so a crash
	// between the two leaves nothing half-listed.
	if err := atomicfile.Write(filepath.Join(dir, id+".data"), data, 0o600); err != nil {
		return Entry{}, fmt.Errorf("history: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, id+".json"), meta, 0o600); err != nil {
		return Entry{}, fmt.Errorf("history: %w", err)
	}
	list, err := h.list(dir)
	if err != nil {
		return e, err
	}
	for _, old := range list[min(len(list), h.keep):] {
		os.Remove(filepath.Join(dir, old.ID+".json"))
		os.Remove(filepath.Join(dir, old.ID+".data"))
	}
	return e, nil
}

// Update changes a kept version's description (not its data).
func (h *History) Update(kind, id string, change func(*Entry)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	dir, err := h.kindDir(kind)
	if err != nil {
		return err
	}
	if !idRE.MatchString(id) {
		return fmt.Errorf("version %q: %w", id, ErrNotFound)
	}
	path := filepath.Join(dir, id+".json")
	e, err := readMeta(path)
	if err != nil {
		return fmt.Errorf("version %q: %w", id, ErrNotFound)
	}
	change(&e)
	e.ID = id
	meta, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, meta, 0o600)
}

// List returns the kept versions of kind, newest first.
func (h *History) List(kind string) ([]Entry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dir, err := h.kindDir(kind)
	if err != nil {
		return nil, err
	}
	return h.list(dir)
}

func (h *History) list(dir string) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	out := []Entry{}
	for _, de := range ents {
		id, ok := strings.CutSuffix(de.Name(), ".json")
		if !ok || !idRE.MatchString(id) {
			continue
		}
		e, err := readMeta(filepath.Join(dir, de.Name()))
		if err != nil || e.ID != id {
			continue // a damaged entry is not offered
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, nil
}

func readMeta(path string) (Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	err = json.Unmarshal(b, &e)
	return e, err
}

// Read returns one kept version. An id that was never made here is
// ErrNotFound, whatever it looks like.
func (h *History) Read(kind, id string) (Entry, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dir, err := h.kindDir(kind)
	if err != nil {
		return Entry{}, nil, err
	}
	if !idRE.MatchString(id) {
		return Entry{}, nil, fmt.Errorf("version %q: %w", id, ErrNotFound)
	}
	e, err := readMeta(filepath.Join(dir, id+".json"))
	if err != nil {
		return Entry{}, nil, fmt.Errorf("version %q: %w", id, ErrNotFound)
	}
	data, err := os.ReadFile(filepath.Join(dir, id+".data"))
	if err != nil {
		return Entry{}, nil, fmt.Errorf("version %q: %w", id, ErrNotFound)
	}
	return e, data, nil
}
