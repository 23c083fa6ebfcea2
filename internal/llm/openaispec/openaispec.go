// Package openaispec checks JSON documents against OpenAI's published
// OpenAPI description (the components tidegate's answers must match, kept
// verbatim in testdata). It is for tests: every answer shape tidegate serves
// is validated with it.
package openaispec

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Answer shapes, by their component names in the spec.
const (
	ChatCompletion       = "CreateChatCompletionResponse"
	ChatCompletionChunk  = "CreateChatCompletionStreamResponse"
	Embeddings           = "CreateEmbeddingResponse"
	Images               = "ImagesResponse"
	ModelList            = "ListModelsResponse"
	Model                = "Model"
	Error                = "ErrorResponse"
	Completion           = "CreateCompletionResponse"
	Moderation           = "CreateModerationResponse"
	Transcription        = "CreateTranscriptionResponseJson"
	TranscriptionVerbose = "CreateTranscriptionResponseVerboseJson"
	Translation          = "CreateTranslationResponseJson"
	Batch                = "Batch"
	BatchList            = "ListBatchesResponse"
	File                 = "OpenAIFile"
	FileList             = "ListFilesResponse"
	FileDeleted          = "DeleteFileResponse"
)

// Roots are the components copied from the spec, with everything they refer to.
var Roots = []string{ChatCompletion, ChatCompletionChunk, Embeddings, Images, ModelList, Model, Error,
	Completion, Moderation, Transcription, TranscriptionVerbose, Translation, Batch, BatchList, File, FileList, FileDeleted}

//go:embed testdata/openai-openapi.components.json
var components []byte

const docURL = "https://tidegate.invalid/openai-openapi.components.json"

var (
	compileOnce sync.Once
	compiler    *jsonschema.Compiler
	compileErr  error
	schemasMu   sync.Mutex
	schemas     = map[string]*jsonschema.Schema{}
)

// Validate checks doc against the named component; the error lists every violation.
func Validate(component string, doc []byte) error {
	sch, err := schema(component)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(inst)
}

func schema(component string) (*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		var doc any
		if compileErr = json.Unmarshal(components, &doc); compileErr != nil {
			return
		}
		compiler = jsonschema.NewCompiler()
		compiler.DefaultDraft(jsonschema.Draft2020)
		compileErr = compiler.AddResource(docURL, OptionalNullable(Nullable(doc), NullWhenUnset...))
	})
	if compileErr != nil {
		return nil, compileErr
	}
	schemasMu.Lock()
	defer schemasMu.Unlock()
	if s, ok := schemas[component]; ok {
		return s, nil
	}
	s, err := compiler.Compile(docURL + "#/components/schemas/" + component)
	if err != nil {
		return nil, err
	}
	schemas[component] = s
	return s, nil
}

// Nullable rewrites OpenAPI 3.0's `nullable: true`, which the spec still
// uses in places although it declares 3.1, into JSON Schema's own form
// (anyOf the schema or null): a JSON-schema validator ignores the keyword
// and would otherwise reject the nulls OpenAI itself sends there (a chunk's
// `logprobs`, `usage`).
func Nullable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			x[k] = Nullable(child)
		}
		if n, _ := x["nullable"].(bool); n {
			delete(x, "nullable")
			return map[string]any{"anyOf": []any{x, map[string]any{"type": "null"}}}
		}
		return x
	case []any:
		for i, child := range x {
			x[i] = Nullable(child)
		}
	}
	return v
}

// NullWhenUnset are the components whose optional properties OpenAI's API
// sends as null when unset, though the spec types them non-null: the
// spec's own examples do, for POST /batches ("errors": null,
// "output_file_id": null, "in_progress_at": null, …) and GET /batches/{id}
// ("failed_at": null), and its files send "status_details": null. tidegate
// answers as OpenAI does; a required property still may not be null.
var NullWhenUnset = []string{Batch, File}

// OptionalNullable lets the optional properties of the named components
// of an OpenAPI document be null (see NullWhenUnset).
func OptionalNullable(doc any, names ...string) any {
	schemas, _ := dig(doc, "components", "schemas").(map[string]any)
	for _, name := range names {
		s, _ := schemas[name].(map[string]any)
		props, _ := s["properties"].(map[string]any)
		required := map[string]bool{}
		if rs, ok := s["required"].([]any); ok {
			for _, r := range rs {
				if r, ok := r.(string); ok {
					required[r] = true
				}
			}
		}
		for p, sub := range props {
			if !required[p] {
				props[p] = map[string]any{"anyOf": []any{sub, map[string]any{"type": "null"}}}
			}
		}
	}
	return doc
}

func dig(v any, path ...string) any {
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
