package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

type keysData struct {
	Keys    []keyView
	Budgets []budgetView
	// Created is a key just made: its secret is in this one answer only.
	Created *keyView
	Err     string
	Notice  string
}

func (d keysData) errorText() string { return d.Err }

func (c *Console) keysData(r *http.Request) (keysData, error) {
	s := sessionFrom(r)
	ks, err := c.visibleKeys(r.Context(), s)
	if err != nil {
		return keysData{}, err
	}
	bs, err := c.budgets(r.Context(), s)
	return keysData{Keys: ks, Budgets: bs}, err
}

func (c *Console) keysPage(w http.ResponseWriter, r *http.Request) {
	d, err := c.keysData(r)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	switch r.URL.Query().Get("done") {
	case "revoked":
		d.Notice = "The key is revoked."
	case "limits":
		d.Notice = "The key's limits are saved."
	case "budget":
		d.Notice = "The project's budget is saved."
	}
	c.render(w, r, http.StatusOK, "keys", "Keys and budgets", d)
}

// rerender shows the keys page again with an error from the admin API.
func (c *Console) rerender(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := err.(*adminErr)
	if !ok || ae.status >= 500 {
		c.internal(w, r, err)
		return
	}
	d, lerr := c.keysData(r)
	if lerr != nil {
		c.internal(w, r, lerr)
		return
	}
	d.Err = ae.msg
	c.render(w, r, ae.status, "keys", "Keys and budgets", d)
}

// formInt reads an optional whole number ≥ 0 from a form.
func formInt(form url.Values, name string) (*int64, error) {
	v := strings.TrimSpace(form.Get(name))
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s is a whole number, 0 or more", name)
	}
	return &n, nil
}

// formBudget reads the budget fields; nil when no amount was given.
func formBudget(form url.Values) (*budget, error) {
	v := strings.TrimSpace(form.Get("budget_amount"))
	if v == "" {
		return nil, nil
	}
	amount, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, fmt.Errorf("the budget's amount is a number")
	}
	// The admin API checks the range, the currency and the period.
	return &budget{Amount: amount, Currency: form.Get("budget_currency"), Period: form.Get("budget_period"), Soft: form.Get("budget_soft") == "on"}, nil
}

// createKey makes a key through the admin API and shows its secret in
// this answer only (never stored, never rendered again; no-store).
func (c *Console) createKey(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "project": strings.TrimSpace(r.PostFormValue("project"))}
	if m := strings.TrimSpace(r.PostFormValue("models")); m != "" {
		var models []string
		for _, x := range strings.Split(m, ",") {
			if x = strings.TrimSpace(x); x != "" {
				models = append(models, x)
			}
		}
		body["models"] = models
	}
	b, err := formLimits(r.PostForm, body)
	if err != nil {
		c.rerender(w, r, &adminErr{status: http.StatusBadRequest, msg: err.Error()})
		return
	}
	if b != nil {
		body["budget"] = b
	}
	var created keyView
	if err := c.adminCall(r.Context(), http.MethodPost, "/admin/keys", body, &created); err != nil {
		c.rerender(w, r, err)
		return
	}
	d, err := c.keysData(r)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	d.Created = &created
	c.render(w, r, http.StatusCreated, "keys", "Keys and budgets", d)
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request) {
	if err := c.adminCall(r.Context(), http.MethodDelete, "/admin/keys/"+url.PathEscape(r.PathValue("id")), nil, nil); err != nil {
		c.rerender(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/keys?done=revoked", http.StatusSeeOther)
}

// keyLimits changes a key's limits and budget (PATCH): a field left empty
// stays as it is; "remove budget" removes it.
func (c *Console) keyLimits(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{}
	b, err := formLimits(r.PostForm, body)
	if err != nil {
		c.rerender(w, r, &adminErr{status: http.StatusBadRequest, msg: err.Error()})
		return
	}
	switch {
	case r.PostFormValue("budget_remove") == "on":
		body["budget"] = nil
	case b != nil:
		body["budget"] = b
	}
	if err := c.adminCall(r.Context(), http.MethodPatch, "/admin/keys/"+url.PathEscape(r.PathValue("id")), body, nil); err != nil {
		c.rerender(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/keys?done=limits", http.StatusSeeOther)
}

func (c *Console) projectBudget(w http.ResponseWriter, r *http.Request) {
	b, err := formBudget(r.PostForm)
	if err == nil && b == nil {
		err = fmt.Errorf("the budget's amount is required")
	}
	if err != nil {
		c.rerender(w, r, &adminErr{status: http.StatusBadRequest, msg: err.Error()})
		return
	}
	name := strings.TrimSpace(r.PostFormValue("project"))
	if err := c.adminCall(r.Context(), http.MethodPut, "/admin/projects/"+url.PathEscape(name)+"/budget", b, nil); err != nil {
		c.rerender(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/keys?done=budget", http.StatusSeeOther)
}

// formLimits copies the form's rpm, tpm and max_streams into body and
// returns its budget (nil: none given), for creating and changing a key alike.
func formLimits(form url.Values, body map[string]any) (*budget, error) {
	for _, f := range []string{"rpm", "tpm", "max_streams"} {
		n, err := formInt(form, f)
		if err != nil {
			return nil, err
		}
		if n != nil {
			body[f] = *n
		}
	}
	return formBudget(form)
}
