package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/store"
)

const evalUsage = `usage:
  tidegate eval add NAME FILE [--grader TYPE] [--extract REGEX] [--format native|openai|promptfoo] [--prompt TEMPLATE] [--replace]
  tidegate eval add demo --builtin
  tidegate eval list [--json]
  tidegate eval show NAME [--json]
  tidegate eval delete NAME
  tidegate eval run NAME --models provider/model,… [--concurrency 8] [--json] [--out DIR] [--run ID]
each takes --config FILE (default: the demo's store)`

// evalCmd: tidegate eval add|list|show|delete, on the configured store.
func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(evalUsage)
	}
	if args[0] == "run" {
		return evalRunCmd(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("eval "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's store)")
	asJSON := fs.Bool("json", false, "print JSON")
	grader := fs.String("grader", eval.TypeExact, "the suite's default grader: "+strings.Join(eval.Types, ", "))
	extract := fs.String("extract", "", "grade the first group of this regex's last match in each answer")
	format := fs.String("format", "", "the file's format (default: from its name and content)")
	prompt := fs.String("prompt", "", "promptfoo: the prompt template ({{var}}) when the file has none")
	replace := fs.Bool("replace", false, "replace a suite of the same name")
	builtin := fs.Bool("builtin", false, "add the built-in demo suite")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	var su *eval.Suite
	switch {
	case args[0] == "add" && *builtin && len(pos) <= 1:
		if su, err = eval.Demo(); err != nil {
			return err
		}
		if len(pos) == 1 {
			su.Name = pos[0]
		}
	case args[0] == "add" && len(pos) == 2:
		spec := eval.GraderSpec{Type: *grader, Extract: *extract}
		if su, err = readSuite(pos[0], pos[1], spec, eval.Options{Format: *format, Prompt: *prompt}); err != nil {
			return err
		}
	case args[0] == "list" && len(pos) == 0, slices.Contains([]string{"show", "delete"}, args[0]) && len(pos) == 1:
	default:
		return errors.New(evalUsage)
	}
	open := configuredStore
	if args[0] == "add" { // a write: may make the store, saying so
		open = func(ctx context.Context, path string) (*store.DB, error) { return storeForWrite(ctx, path, stderr) }
	}
	st, err := open(ctx, *configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "add":
		if err := st.CreateSuite(ctx, su, *replace); errors.Is(err, eval.ErrExists) {
			return fmt.Errorf("a suite named %q exists (--replace replaces it)", su.Name)
		} else if err != nil {
			return err
		}
		sum := su.Summarize()
		fmt.Fprintf(stdout, "suite %s: %d items, grader %s%s\n", sum.Name, sum.ItemCount, sum.Grader.Type, tagList(sum.Tags))
		return nil
	case "list":
		return evalList(ctx, st, *asJSON, stdout)
	case "show":
		return evalShow(ctx, st, pos[0], *asJSON, stdout)
	default:
		if err := st.DeleteSuite(ctx, pos[0]); errors.Is(err, eval.ErrNotFound) {
			return fmt.Errorf("no suite named %q", pos[0])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "suite %s deleted\n", pos[0])
		return nil
	}
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments ("eval add NAME FILE --grader numeric").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

// maxSuiteFile bounds a suite file read into memory.
const maxSuiteFile = 256 << 20

// readSuite reads and validates a suite file; errors name the file, the
// line and the field.
func readSuite(name, path string, spec eval.GraderSpec, opt eval.Options) (*eval.Suite, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSuiteFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSuiteFile {
		return nil, fmt.Errorf("%s: over %d MiB", path, maxSuiteFile>>20)
	}
	p, err := eval.Parse(path, data, opt)
	if err == nil {
		su := &eval.Suite{Name: name, Grader: spec, Items: p.Items}
		if err = eval.Validate(su, p.Lines); err == nil {
			return su, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", path, err)
}

func tagList(tags map[string]int) string {
	if len(tags) == 0 {
		return ""
	}
	var parts []string
	for t, n := range tags {
		parts = append(parts, fmt.Sprintf("%s %d", t, n))
	}
	slices.Sort(parts)
	return "; tags: " + strings.Join(parts, ", ")
}

func evalList(ctx context.Context, st *store.DB, asJSON bool, stdout io.Writer) error {
	list, err := st.Suites(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeIndented(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tITEMS\tGRADER\tTAGS\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Name, s.ItemCount, s.Grader.Type, strings.TrimPrefix(tagList(s.Tags), "; tags: "), s.CreatedAt.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func evalShow(ctx context.Context, st *store.DB, name string, asJSON bool, stdout io.Writer) error {
	su, err := st.Suite(ctx, name)
	if errors.Is(err, eval.ErrNotFound) {
		return fmt.Errorf("no suite named %q", name)
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeIndented(stdout, su)
	}
	sum := su.Summarize()
	fmt.Fprintf(stdout, "suite %s: %d items, grader %s%s\n", sum.Name, sum.ItemCount, sum.Grader.Type, tagList(sum.Tags))
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGRADER\tTAGS\tPROMPT")
	for _, it := range su.Items {
		g := sum.Grader.Type
		if it.Grader != nil {
			g = it.Grader.Type
		}
		last := it.Messages[len(it.Messages)-1].Content.String()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.ID, g, strings.Join(it.Tags, ","), oneLine(last, 60))
	}
	return tw.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
