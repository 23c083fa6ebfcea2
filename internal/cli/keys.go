package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/store"
)

// keysCmd: tidegate keys create|list|revoke, on the configured store.
func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const keysUsage = "usage: tidegate keys create|list|revoke [flags] (tidegate keys create --help lists a command's flags)"
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	switch args[0] {
	case "create", "list", "revoke":
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, keysUsage)
		return nil
	default:
		return fmt.Errorf("unknown keys command %q; %s", args[0], keysUsage)
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's store)")
	asJSON := fs.Bool("json", false, "print JSON")
	var req keys.CreateRequest
	var models, expires, budget string
	if args[0] == "create" {
		fs.StringVar(&req.Name, "name", "", "key name (required)")
		fs.StringVar(&req.Project, "project", "default", "project")
		fs.StringVar(&models, "models", "", "comma-separated models the key may use (default: all)")
		fs.Int64Var(&req.RPM, "rpm", 0, "requests per minute (0: no limit)")
		fs.Int64Var(&req.TPM, "tpm", 0, "tokens per minute (0: no limit)")
		fs.Int64Var(&req.MaxStreams, "max-streams", 0, "concurrent streams (0: no limit)")
		fs.StringVar(&expires, "expires", "", "expiry: RFC 3339 time or a duration such as 720h")
		fs.StringVar(&budget, "budget", "", "budget AMOUNT:CURRENCY:PERIOD[:soft], e.g. 100:CNY:month")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	open := configuredStore
	if args[0] == "create" {
		open = func(ctx context.Context, path string) (*store.DB, error) { return storeForWrite(ctx, path, stderr) }
	}
	st, err := open(ctx, *configPath)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	switch args[0] {
	case "create":
		if models != "" {
			req.Models = strings.Split(models, ",")
		}
		if expires != "" {
			t, err := time.Parse(time.RFC3339, expires)
			if err != nil {
				d, derr := time.ParseDuration(expires)
				if derr != nil {
					return fmt.Errorf("--expires: want RFC 3339 or a duration, got %q", expires)
				}
				t = now.Add(d)
			}
			req.ExpiresAt = &t
		}
		if budget != "" {
			spec, err := parseBudget(budget)
			if err != nil {
				return err
			}
			req.Budget = spec
		}
		return keysCreate(ctx, st, &req, now, *asJSON, stdout)
	case "list":
		return keysList(ctx, st, now, *asJSON, stdout)
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("usage: tidegate keys revoke KEY_ID")
		}
		return keysRevoke(ctx, st, fs.Arg(0), stdout)
	default:
		return fmt.Errorf("unknown keys command %q", args[0])
	}
}

// keysCreate: tidegate keys create; the secret is printed once.
func keysCreate(ctx context.Context, st keys.Creator, req *keys.CreateRequest, now time.Time, asJSON bool, stdout io.Writer) error {
	c, err := keys.Create(ctx, st, req, now)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"id": c.Stored.ID, "key": c.Key})
	}
	fmt.Fprintf(stdout, "created %s (%s, project %s)\nkey: %s\nThe key is shown only now; tidegate keeps only its hash.\n", c.Stored.ID, c.Stored.Name, c.Stored.ProjectName, c.Key)
	return nil
}

// keyLister lists keys with their budgets, newest first.
type keyLister interface {
	ListKeys(ctx context.Context) ([]keys.Key, error)
}

// keysList: tidegate keys list, as a table or JSON.
func keysList(ctx context.Context, st keyLister, now time.Time, asJSON bool, stdout io.Writer) error {
	ks, err := st.ListKeys(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(ks)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tPROJECT\tMODELS\tRPM\tTPM\tSTREAMS\tBUDGET\tSTATE")
	for _, k := range ks {
		state := "active"
		switch {
		case !k.RevokedAt.IsZero():
			state = "revoked"
		case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
			state = "expired"
		}
		b := "-"
		if k.Budget != nil {
			b = fmt.Sprintf("%.2f %s/%s", float64(k.Budget.Amount)/1e6, k.Budget.Currency, k.Budget.Period)
		}
		m := strings.Join(k.Models, ",")
		if m == "" {
			m = "*"
		}
		fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.ProjectName, m, k.RPM, k.TPM, k.MaxStreams, b, state)
	}
	return tw.Flush()
}

// keyRevoker revokes a key by its id.
type keyRevoker interface {
	RevokeKey(ctx context.Context, id string) error
}

// keysRevoke: tidegate keys revoke KEY_ID.
func keysRevoke(ctx context.Context, st keyRevoker, id string, stdout io.Writer) error {
	if err := st.RevokeKey(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s\n", id)
	return nil
}

func parseBudget(s string) (*keys.BudgetSpec, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 3 || len(parts) > 4 {
		return nil, fmt.Errorf("--budget: want AMOUNT:CURRENCY:PERIOD[:soft], got %q", s)
	}
	spec := &keys.BudgetSpec{Currency: strings.ToUpper(parts[1]), Period: parts[2], Soft: len(parts) == 4 && parts[3] == "soft"}
	if _, err := fmt.Sscan(parts[0], &spec.Amount); err != nil {
		return nil, fmt.Errorf("--budget: bad amount %q", parts[0])
	}
	if _, err := spec.ToBudget("budget"); err != nil {
		return nil, err
	}
	return spec, nil
}
