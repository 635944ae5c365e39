rule First { strings: $a = "SLUICE-TEST-A" condition: $a }
