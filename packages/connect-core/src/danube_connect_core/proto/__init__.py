"""Generated gRPC stubs for the Danube wire contract (`make proto`). Do not edit."""
