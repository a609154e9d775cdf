from mailgrant.cli import main

main()
