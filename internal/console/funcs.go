package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"reflect"
	"time"
)

var funcs = template.FuncMap{
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"whenp": func(t *time.Time) string { return whenPtr(t) },
	"ms":    func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) },
	"f1":    func(v any) string { return fixed(float(v), 1) },
	"f2":    func(v any) string { return fixed(float(v), 2) },
	"f4":    func(v any) string { return fixed(float(v), 4) },
	"pct":   func(v any) string { return fixed(100*float(v), 1) + "%" },
	"money": func(micros int64) string { return fmt.Sprintf("%.4f", float64(micros)/1e6) },
	"json":  toJSON,
	"list":  func(v ...string) []string { return v },
}

func whenPtr(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// fixed formats a number that may come from outside (status, upstream
// figures) without printing NaN or Inf.
func fixed(v float64, places int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.*f", places, v)
}

// float reads any number (timing.Ms and other named types included).
func float(v any) float64 {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint())
	}
	return math.NaN()
}

// toJSON renders chart data for a data- attribute (html/template escapes it).
func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}
