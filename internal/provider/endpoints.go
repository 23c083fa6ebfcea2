package provider

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
)

// Completer is implemented by providers that serve legacy text completions.
type Completer interface {
	Completion(ctx context.Context, req *llm.CompletionRequest) (*llm.CompletionResponse, error)
}

// Moderator is implemented by providers that classify text for moderation.
type Moderator interface {
	Moderation(ctx context.Context, req *llm.ModerationRequest) (*llm.ModerationResponse, error)
}

// AudioTask is what an audio upload asks for: its path under /audio.
type AudioTask string

// Audio tasks.
const (
	Transcribe AudioTask = "transcriptions"
	Translate  AudioTask = "translations"
)

// AudioTranscriber is implemented by providers that turn speech into text.
// The upload's model field is already the provider's own model name.
type AudioTranscriber interface {
	Transcription(ctx context.Context, task AudioTask, up *Upload) (*Transcript, error)
}

// Transcript is a transcription's answer as the upstream sent it (JSON, text,
// SRT or VTT), with what it is billed by when the upstream said.
type Transcript struct {
	ContentType string
	Body        []byte
	// Seconds of audio, when the answer reports a duration; 0: unknown.
	Seconds float64
	// Usage, when the model is billed by tokens (gpt-4o-transcribe).
	Usage *llm.Usage
}

// SpeechSynthesizer is implemented by providers that turn text into audio.
type SpeechSynthesizer interface {
	Speech(ctx context.Context, req *llm.SpeechRequest) (*Audio, error)
}

// Audio is a binary answer, read as it arrives; the reader closes Body.
type Audio struct {
	ContentType string
	Body        io.ReadCloser
}

// ImageEditor is implemented by providers that edit images.
type ImageEditor interface {
	ImageEdit(ctx context.Context, up *Upload) (*llm.ImageResponse, error)
}

// Upload is a multipart form as the client sent it: its text fields in
// order, and its files, each a section of a spool (not memory), so any
// number of attempts can send it again.
type Upload struct {
	Fields []FormField
	Files  []FormFile
}

// FormField is one text field of a form.
type FormField struct{ Name, Value string }

// FormFile is one file of a form: Size bytes of Content from Offset.
type FormFile struct {
	Field, Filename, ContentType string
	Content                      io.ReaderAt
	Offset, Size                 int64
}

// Value is the first value of a text field, or "".
func (u *Upload) Value(name string) string {
	for _, f := range u.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// With returns a copy of the upload with the field set to value (every
// earlier value of it replaced by one).
func (u *Upload) With(name, value string) *Upload {
	out := &Upload{Files: u.Files, Fields: make([]FormField, 0, len(u.Fields)+1)}
	set := false
	for _, f := range u.Fields {
		if f.Name != name {
			out.Fields = append(out.Fields, f)
		} else if !set {
			out.Fields, set = append(out.Fields, FormField{name, value}), true
		}
	}
	if !set {
		out.Fields = append(out.Fields, FormField{name, value})
	}
	return out
}

// Body encodes the upload as multipart/form-data, text fields first, and
// streams it: the files are read from their spool as the reader is read.
// length is the exact size of the encoding, so the upstream gets a
// Content-Length rather than a chunked body.
func (u *Upload) Body() (contentType string, length int64, body io.ReadCloser, err error) {
	var counted counter
	boundary, err := u.encode(&counted, "", false)
	if err != nil {
		return "", 0, nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		// The pipe ends with the error that stopped the encoding, if any:
		// the HTTP client then aborts the upload rather than send a cut form.
		_, err := u.encode(pw, boundary, true)
		pw.CloseWithError(err)
	}()
	return "multipart/form-data; boundary=" + boundary, counted.n, pr, nil
}

// encode writes the form to w with the boundary ("" picks one) and returns
// the boundary. With files false, each file's bytes are only counted (w
// must be a *counter): the length without reading a byte.
func (u *Upload) encode(w io.Writer, boundary string, files bool) (string, error) {
	mw := multipart.NewWriter(w)
	if boundary != "" {
		if err := mw.SetBoundary(boundary); err != nil {
			return "", err
		}
	}
	for _, f := range u.Fields {
		if err := mw.WriteField(f.Name, f.Value); err != nil {
			return "", err
		}
	}
	for _, f := range u.Files {
		h := make(textproto.MIMEHeader, 2)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, quoteEscaper.Replace(f.Field), quoteEscaper.Replace(f.Filename)))
		h.Set("Content-Type", cmp.Or(f.ContentType, "application/octet-stream"))
		pw, err := mw.CreatePart(h)
		if err != nil {
			return "", err
		}
		if !files {
			w.(*counter).n += f.Size
			continue
		}
		if _, err := io.Copy(pw, io.NewSectionReader(f.Content, f.Offset, f.Size)); err != nil {
			return "", err
		}
	}
	return mw.Boundary(), mw.Close()
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

// counter counts the bytes written to it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// FileBytes is the size of the upload's files together.
func (u *Upload) FileBytes() int64 {
	var n int64
	for _, f := range u.Files {
		n += f.Size
	}
	return n
}
