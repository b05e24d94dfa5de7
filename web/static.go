package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

// maxStaticFile bounds a file served from --static.
const maxStaticFile = 32 << 20

//go:embed static
var embedded embed.FS

// contentTypes fixes the types browsers are strict about (ES modules must
// be served as JavaScript) independently of the host's MIME tables.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
	".md":    "text/markdown; charset=utf-8",
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

type staticFile struct {
	data  []byte
	etag  string
	ctype string
}

func newStaticFile(name string, data []byte) *staticFile {
	sum := sha256.Sum256(data)
	return &staticFile{data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: contentType(name)}
}

// staticFiles serves the editor: the embedded copy, read and hashed once,
// or a directory on disk, read on every request.
type staticFiles struct {
	files map[string]*staticFile // embedded
	root  *os.Root               // on disk
}

func newStaticFiles(dir string) (*staticFiles, error) {
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("web: static directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("web: static directory %q is not a directory", dir)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("web: static directory: %w", err)
		}
		return &staticFiles{root: root}, nil
	}
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		return nil, err
	}
	files := map[string]*staticFile{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		files[p] = newStaticFile(p, data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: reading the embedded editor: %w", err)
	}
	return &staticFiles{files: files}, nil
}

func (sf *staticFiles) lookup(name string) (*staticFile, error) {
	if sf.files != nil {
		f, ok := sf.files[name]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return f, nil
	}
	// No symbolic link is followed, at any level: the directory serves
	// only what it holds itself (os.Root also keeps every path inside it).
	parts := strings.Split(name, "/")
	for i := range parts {
		st, err := sf.root.Lstat(path.Join(parts[:i+1]...))
		if err != nil {
			return nil, err
		}
		if st.Mode()&fs.ModeSymlink != 0 || (i == len(parts)-1 && !st.Mode().IsRegular()) {
			return nil, fs.ErrNotExist
		}
	}
	f, err := sf.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStaticFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxStaticFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxStaticFile)
	}
	return newStaticFile(name, data), nil
}

// ServeHTTP serves a file of the editor; "/" and directories serve their
// index.html. Files are revalidated on every load (Cache-Control: no-cache
// with an ETag), so an upgraded binary never runs a stale editor.
func (sf *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || strings.HasSuffix(r.URL.Path, "/") {
		name = path.Join(name, "index.html")
	}
	if !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	f, err := sf.lookup(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "reading "+name, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}
