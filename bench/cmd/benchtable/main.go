// Command benchtable runs every benchmark of the project (`go test -bench`)
// and prints one table: each benchmark's figures, with the same-run
// baseline and ratio where the benchmark reports them. The raw numbers are
// written to bench/results/latest.json.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is one benchmark line.
type Result struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	N       int64              `json:"n"`
	Metrics map[string]float64 `json:"metrics"`
}

func main() {
	pkgs := flag.String("pkgs", "./...", "packages whose benchmarks to run")
	benchtime := flag.String("benchtime", "", "go test -benchtime (default: go's)")
	filter := flag.String("bench", ".", "go test -bench pattern")
	out := flag.String("out", filepath.Join("bench", "results", "latest.json"), "machine-readable results file")
	flag.Parse()

	// -p 1: one package's benchmarks at a time, so they do not compete for
	// the CPU with each other.
	args := []string{"test", "-p", "1", "-run", "^$", "-bench", *filter, "-benchmem", "-count", "1", "-timeout", "60m"}
	if *benchtime != "" {
		args = append(args, "-benchtime", *benchtime)
	}
	args = append(args, strings.Fields(*pkgs)...)
	fmt.Fprintf(os.Stderr, "benchtable: go %s\n", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	results := parse(io.TeeReader(stdout, progress{}))
	werr := cmd.Wait()

	print(os.Stdout, results)
	if err := write(*out, results); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "benchtable: %d results written to %s\n", len(results), *out)
	if werr != nil {
		fail(fmt.Errorf("go test: %w", werr))
	}
}

// progress echoes package lines so a long run shows where it is.
type progress struct{}

func (progress) Write(p []byte) (int, error) {
	for _, l := range strings.Split(string(p), "\n") {
		if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "pkg: ") {
			fmt.Fprintln(os.Stderr, l)
		}
	}
	return len(p), nil
}

func parse(r io.Reader) []Result {
	var (
		pkg     string
		results []Result
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		res := Result{Package: pkg, Name: strings.TrimPrefix(f[0], "Benchmark"), N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res.Metrics[f[i+1]] = v
		}
		results = append(results, res)
	}
	return results
}

// headline orders the metrics shown first.
var headline = []string{"records/s", "msgs/s", "datapoints/s", "ns/hop", "ns/op", "allocs/publish", "allocs/op", "B/op"}

// print writes the results as one Markdown table: each benchmark's own
// figures, the baseline measured in the same run, and their ratio.
func print(w io.Writer, results []Result) {
	fmt.Fprintln(w, "| benchmark | figures | baseline (same run) | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range results {
		keys := make([]string, 0, len(r.Metrics))
		for k := range r.Metrics {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if ri, rj := rank(keys[i]), rank(keys[j]); ri != rj {
				return ri < rj
			}
			return keys[i] < keys[j]
		})
		// Per-publish allocations replace per-op ones; benchmarks that
		// report ns/op 0 measure other processes, not their own loop.
		_, perPublish := r.Metrics["allocs/publish"]
		if ns, ok := r.Metrics["ns/op"]; !ok || ns == 0 {
			perPublish = true
		}
		var figs, base, ratios []string
		for _, k := range keys {
			v := r.Metrics[k]
			switch {
			case strings.HasPrefix(k, "x-"):
				ratios = append(ratios, format(v)+"× "+ratioMeaning(k))
			case isBaseline(k):
				base = append(base, format(v)+" "+k)
			case k == "ns/op" && v == 0:
			case perPublish && (k == "allocs/op" || k == "B/op"):
			default:
				figs = append(figs, format(v)+" "+k)
			}
		}
		ratio := "-"
		if len(ratios) > 0 {
			ratio = strings.Join(ratios, ", ")
		}
		fmt.Fprintf(w, "| %s %s | %s | %s | %s |\n", shortPkg(r.Package), r.Name, strings.Join(figs, ", "), strings.Join(base, ", "), ratio)
	}
}

// ratioMeaning says what an "x-…" ratio metric compares, so that the
// ratio column reads the same way whichever way the benchmark divides;
// by default the name itself, dashes read as spaces.
func ratioMeaning(k string) string {
	switch k {
	case "x-paho-rate":
		return "raw paho's rate"
	case "x-chan-time":
		return "a channel hop's time"
	case "x-less-cpu":
		return "less CPU per record"
	case "x-nodered-rate":
		return "Node-RED's records/s"
	case "x-less-cpu-than-nodered":
		return "less CPU per record than Node-RED"
	case "x-less-peak-rss-than-nodered":
		return "less peak RSS than Node-RED"
	case "x-lower-p99-than-nodered":
		return "lower p99 latency than Node-RED"
	case "x-less-idle-cpu-than-nodered":
		return "less CPU than Node-RED while idle"
	case "x-sdk-rate":
		return "the Python SDK's records/s"
	}
	return strings.ReplaceAll(strings.TrimPrefix(k, "x-"), "-", " ")
}

func isBaseline(k string) bool {
	for _, p := range []string{"paho-", "chan-", "baseline-", "naive-", "nodered-", "sdk-"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func rank(k string) int {
	for i, h := range headline {
		if h == k {
			return i
		}
	}
	return len(headline)
}

func format(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/tbflow/tbflow/")
}

func write(path string, results []Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Time    time.Time `json:"time"`
		Results []Result  `json:"results"`
	}{time.Now().UTC(), results}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchtable:", err)
	os.Exit(1)
}
