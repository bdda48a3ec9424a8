package webui

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/supervisor"
)

// fill sets every field of v (a pointer) to a non-zero value, so that a
// field the contract forgets to carry over shows up in the JSON.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(1.5)
	}
}

func sameJSON(t *testing.T, what string, inner, outer any) {
	t.Helper()
	a, err := json.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(outer)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s: the API's JSON differs from the part's own:\n part: %s\n  api: %s", what, a, b)
	}
}

func TestContractCarriesEveryField(t *testing.T) {
	var app supervisor.AppState
	fill(reflect.ValueOf(&app).Elem())
	sameJSON(t, "app", app, apiApp(app))

	var dev discovery.Device
	fill(reflect.ValueOf(&dev).Elem())
	sameJSON(t, "device", dev, apiDevice(dev))
}
