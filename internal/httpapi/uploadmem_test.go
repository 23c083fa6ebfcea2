package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// zeros is an endless source of audio bytes that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// uploadOnce sends a size-byte file as a transcription upload, itself
// streamed (the client holds no copy either), and fails unless it is relayed.
func uploadOnce(tb testing.TB, srv *testServer, size int64) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", "long.wav")
		if err == nil {
			_, err = io.Copy(fw, io.LimitReader(zeros{}, size))
		}
		if err == nil {
			err = mw.WriteField("model", "voice")
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/audio/transcriptions", pr)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var got struct{ Text string }
	_ = json.Unmarshal(b, &got)
	if n, _ := strconv.ParseInt(got.Text, 10, 64); resp.StatusCode != http.StatusOK || n < size {
		tb.Fatalf("status %d: %s (the upstream read that many bytes, want at least %d)", resp.StatusCode, b, size)
	}
}

// uploadServer is tidegate in front of an upstream that reads and discards
// uploads, answering how many bytes it read.
func uploadServer(tb testing.TB, limit int64) *testServer {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"text":"%d"}`, n)
	}))
	tb.Cleanup(upstream.Close)
	client := openAIClient(upstream.URL)
	client.Preset = provider.Preset{Transcriptions: true}
	t, _ := tb.(*testing.T)
	if t == nil {
		t = &testing.T{}
	}
	return newServer(t, map[string]provider.Provider{"up": client},
		[]router.Route{{Name: "voice", Targets: []router.Target{{Provider: "up", Model: "whisper-1"}}}},
		func(s *httpapi.Server) { s.BodyLimit = limit })
}

// TestLargeUploadNotBuffered: a 32 MiB upload passes through tidegate (and
// the test's own client and upstream) with allocations of a small fraction
// of its size, so it is never held whole in memory.
func TestLargeUploadNotBuffered(t *testing.T) {
	defer closeUpstreamClients()
	const size = 32 << 20
	srv := uploadServer(t, 2*size)
	uploadOnce(t, srv, 1<<10) // warm up: connections, pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	uploadOnce(t, srv, size)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("a %d MiB upload allocated %.1f MiB: it was buffered", size>>20, float64(alloc)/(1<<20))
	}
}

// BenchmarkLargeUpload reports what an 8 MiB upload costs in allocations,
// as bytes allocated per byte uploaded (client and upstream included).
func BenchmarkLargeUpload(b *testing.B) {
	const size = 8 << 20
	srv := uploadServer(b, 2*size)
	defer srv.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		uploadOnce(b, srv, size)
	}
}
