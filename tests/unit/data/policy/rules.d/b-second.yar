rule Second { strings: $a = "SLUICE-TEST-B" condition: $a }
