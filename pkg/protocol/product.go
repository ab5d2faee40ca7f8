package protocol

import "strings"

// features maps a product name to its first feature, per docs/PROTOCOL.md §8.
var features = map[string]string{
	"NVIDIA Virtual Applications":            "GRID-Virtual-Apps",
	"GRID Virtual Applications":              "GRID-Virtual-Apps",
	"NVIDIA Virtual PC":                      "GRID-Virtual-PC",
	"GRID Virtual PC":                        "GRID-Virtual-PC",
	"NVIDIA RTX Virtual Workstation":         "Quadro-Virtual-DWS",
	"Quadro Virtual Data Center Workstation": "Quadro-Virtual-DWS",
	"NVIDIA vGaming":                         "GRID-vGaming",
	"GRID vGaming":                           "GRID-vGaming",
	"NVIDIA Virtual Compute Server":          "NVIDIA-vComputeServer",
	"NVIDIA OVE Licensing":                   "OVE_Licensing",
	"GRID-Virtual-Apps-3.0":                  "GRID-Virtual-Apps",
	"GRID-Virtual-PC-2.0":                    "GRID-Virtual-PC",
	"GRID-Virtual-WS-2.0":                    "GRID-Virtual-WS",
	"GRID-Virtual-WS-Ext-2.0":                "GRID-Virtual-WS-Ext",
	"Quadro-Virtual-DWS-5.0":                 "Quadro-Virtual-DWS",
	"GRID-vGaming-8.0":                       "GRID-vGaming",
	"GRID-vGaming-NLS-Metered-8.0":           "GRID-vGaming-NLS-Metered",
	"NVIDIA-vComputeServer-9.0":              "NVIDIA-vComputeServer",
	"NVIDIA-vComputeServer NLS Metered-9.0":  "NVIDIA-vComputeServer NLS Metered",
	"NVAIE_Licensing-1.0":                    "NVAIE_Licensing",
	"vGaming_FB_License-0.1":                 "vGaming_FB_License",
	"vGaming_Flexera_License-0.1":            "vGaming_Flexera_License",
}

// FeatureName returns the feature a lease for product carries. For a product
// with no known feature it returns the product name itself and known=false,
// so that the lease is still granted (FastAPI-DLS answers 500 there) and the
// caller can log a warning.
func FeatureName(product string) (feature string, known bool) {
	if f, ok := features[strings.TrimSpace(product)]; ok {
		return f, true
	}
	return product, false
}
