from wav.cli import main

raise SystemExit(main())
