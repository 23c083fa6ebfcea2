package secrets

import "testing"

func TestSealBindsToRow(t *testing.T) {
	sl, err := NewSealer("0123456789abcdef-secret")
	if err != nil {
		t.Fatal(err)
	}
	sealed := sl.Seal("cred_1", "deepseek", "sk-live")
	if got, err := sl.Open("cred_1", "deepseek", sealed); err != nil || got != "sk-live" {
		t.Fatalf("open = %q, %v", got, err)
	}
	for _, moved := range [][2]string{{"cred_2", "deepseek"}, {"cred_1", "qwen"}} {
		if _, err := sl.Open(moved[0], moved[1], sealed); err == nil {
			t.Errorf("a ciphertext copied to %v opened", moved)
		}
	}
	if _, err := NewSealer("short"); err == nil {
		t.Error("a short secret was accepted")
	}
}
