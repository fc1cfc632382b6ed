from edgegw.cli.main import main

main()
