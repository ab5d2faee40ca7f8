package httpapi

import (
	"os"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// The whole protocol suite (goldens, bad input, the guest journey) runs on
// bbolt, then again on PostgreSQL.
func TestMain(m *testing.M) { os.Exit(storetest.RunBoth(m)) }
