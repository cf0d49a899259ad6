from mailbag.cli.main import main

main()
