package httpapi

import (
	"context"

	"github.com/tidegate/tidegate/internal/keys"
)

// MasterKeyGroup labels the usage of requests made with the master key,
// which belong to no key or project.
const MasterKeyGroup = "(master key)"

// NameUsageGroups shows keys and projects by name in a usage report
// grouped by key or project (the ledger keeps ids): a key as "name (id)",
// since names need not be unique; a project by its unique name.
func NameUsageGroups(ctx context.Context, st interface {
	ListKeys(ctx context.Context) ([]keys.Key, error)
}, groupBy string, rows []UsageRowView) error {
	if groupBy != "key" && groupBy != "project" {
		return nil
	}
	ks, err := st.ListKeys(ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, k := range ks {
		names[k.ID] = k.Name + " (" + k.ID + ")"
		names[k.ProjectID] = k.ProjectName
	}
	for i := range rows {
		switch name, ok := names[rows[i].Group]; {
		case rows[i].Group == "":
			rows[i].Group = MasterKeyGroup
		case ok:
			rows[i].Group = name
		}
	}
	return nil
}
