package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// median of the values; NaN for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Median is a metric's median over the rounds on one broker (NaN when no
// round succeeded).
func (r *Report) Median(figure, broker, key string) float64 {
	var v []float64
	for _, s := range r.Samples[figure][broker] {
		if x, ok := s.Values[key]; ok {
			v = append(v, x)
		}
	}
	return median(v)
}

// si writes a rate the way the issue does: 170.6k.
func si(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func formatValue(m Metric, v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch m.Unit {
	case "/s":
		return si(v)
	case "%":
		if v == 0 {
			return "0 %"
		}
		return fmt.Sprintf("%.2f %%", v)
	case "µs":
		return fmt.Sprintf("%.0f µs", v)
	case "KB":
		return fmt.Sprintf("%.1f KB", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	}
	return fmt.Sprintf("%.3g %s", v, m.Unit)
}

func ratio(a, b float64) string {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return "n/a"
	case b == 0 && a == 0:
		return "="
	case b == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// WriteTable prints the figures as a Markdown table: each figure's median
// for both brokers, their ratio and issue 8's goal for the first broker.
func (r *Report) WriteTable(w io.Writer) {
	a, b := r.Brokers[0], r.Brokers[1]
	fmt.Fprintf(w, "| figure | %s | %s | ratio %s / %s | goal |\n", a, b, a, b)
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- |")
	for _, f := range r.Figures {
		for _, m := range f.Metrics {
			va, vb := r.Median(f.Name, a, m.Key), r.Median(f.Name, b, m.Key)
			label := m.Label
			if m.Lower {
				label += " (lower is better)"
			}
			goal := ""
			if m.Goal != nil {
				goal = m.Goal.Text
				if !math.IsNaN(va) && !math.IsNaN(vb) {
					if m.Goal.Met(va, vb) {
						goal += " met"
					} else {
						goal += " not met"
					}
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", label, formatValue(m, va), formatValue(m, vb), ratio(va, vb), goal)
		}
	}
}

// WriteCPU prints, per figure and broker, the medians of the broker's CPU
// and of each generator process's own CPU (% of one core): a generator
// process near 100 % would be the bottleneck, not the broker.
func (r *Report) WriteCPU(w io.Writer) {
	fmt.Fprintln(w, "| figure | broker | broker CPU | generator CPU, per process |")
	fmt.Fprintln(w, "| --- | --- | ---: | --- |")
	for _, f := range r.Figures {
		for _, b := range r.Brokers {
			samples := r.Samples[f.Name][b]
			if len(samples) == 0 {
				continue
			}
			var bc []float64
			gen := map[string][]float64{}
			for _, s := range samples {
				bc = append(bc, s.BrokerCPU)
				for role, v := range s.GenCPU {
					gen[role] = append(gen[role], v)
				}
			}
			var parts []string
			for _, role := range slices.Sorted(maps.Keys(gen)) {
				parts = append(parts, fmt.Sprintf("%s %.0f %%", role, median(gen[role])))
			}
			brokerCPU := "—"
			if len(bc) > 0 && median(bc) > 0 {
				brokerCPU = fmt.Sprintf("%.0f %%", median(bc))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", f.Name, b, brokerCPU, strings.Join(parts, ", "))
		}
	}
}

// WriteNotes prints each measurement's note and the failures.
func (r *Report) WriteNotes(w io.Writer) {
	for _, f := range r.Figures {
		for _, b := range r.Brokers {
			for i, s := range r.Samples[f.Name][b] {
				if s.Note != "" {
					fmt.Fprintf(w, "- %s, %s, sample %d: %s\n", f.Name, b, i+1, s.Note)
				}
			}
		}
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "- FAILED %s\n", f)
	}
}

// describe is a progress line for one sample.
func (s Sample) describe(f Figure) string {
	var parts []string
	for _, m := range f.Metrics {
		if v, ok := s.Values[m.Key]; ok {
			parts = append(parts, m.Key+" "+formatValue(m, v))
		}
	}
	cpu := fmt.Sprintf("broker cpu %.0f%%", s.BrokerCPU)
	for _, role := range slices.Sorted(maps.Keys(s.GenCPU)) {
		cpu += fmt.Sprintf(", %s %.0f%%", role, s.GenCPU[role])
	}
	out := strings.Join(parts, "  ") + "  (" + cpu + ")"
	if s.Note != "" {
		out += "  " + s.Note
	}
	return out
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
