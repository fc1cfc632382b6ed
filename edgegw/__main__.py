from edgegw.cli.entry import main

main()
