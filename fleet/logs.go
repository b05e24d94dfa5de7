package fleet

import (
	"bytes"
	"strings"
	"sync"
)

// Log buffer bounds.
const (
	DefaultLogLines = 500  // lines kept
	maxLogLine      = 2048 // bytes kept of one line
	maxLogReply     = 48 << 10
)

// LogBuffer keeps the last lines written to it (an io.Writer to tee the
// process's log into), for the tbflow.logs service RPC. Its memory is
// bounded: at most Lines lines of at most 2 KiB each.
type LogBuffer struct {
	mu      sync.Mutex
	lines   []string
	next    int
	full    bool
	partial []byte
}

// NewLogBuffer keeps the last n lines (DefaultLogLines when n <= 0).
func NewLogBuffer(n int) *LogBuffer {
	if n <= 0 {
		n = DefaultLogLines
	}
	return &LogBuffer{lines: make([]string, n)}
}

// Write adds complete lines; a line without its newline waits for the rest.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(b.partial)
			if room > 0 {
				b.partial = append(b.partial, p[:min(room, len(p))]...)
			}
			break
		}
		line := p[:i]
		if len(b.partial) > 0 {
			room := max(maxLogLine-len(b.partial), 0)
			line = append(b.partial, line[:min(room, len(line))]...)
			b.partial = nil
		}
		if len(line) > maxLogLine {
			line = line[:maxLogLine]
		}
		b.lines[b.next] = string(line)
		b.next = (b.next + 1) % len(b.lines)
		if b.next == 0 {
			b.full = true
		}
		p = p[i+1:]
	}
	return n, nil
}

// Last returns up to n of the newest lines, oldest first, each passed
// through redact (when set), at most 48 KiB in all.
func (b *LogBuffer) Last(n int, redact func(string) string) []string {
	b.mu.Lock()
	var all []string
	if b.full {
		all = append(all, b.lines[b.next:]...)
	}
	all = append(all, b.lines[:b.next]...)
	b.mu.Unlock()
	if n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	out := make([]string, 0, len(all))
	size := 0
	for i := len(all) - 1; i >= 0; i-- {
		l := all[i]
		if redact != nil {
			l = redact(l)
		}
		if size+len(l) > maxLogReply {
			break
		}
		size += len(l)
		out = append(out, l)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// redactor replaces every secret value in a line by "***".
type redactor struct {
	mu      sync.Mutex
	secrets map[string]struct{}
}

func (r *redactor) add(vals ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets == nil {
		r.secrets = map[string]struct{}{}
	}
	for _, v := range vals {
		if len(v) >= 3 {
			r.secrets[v] = struct{}{}
		}
	}
}

func (r *redactor) redact(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for v := range r.secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}
