from bench.cache_demo.main import main

raise SystemExit(main())
